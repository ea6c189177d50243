#!/usr/bin/env node
/**
 * Times the streaming JPEG decoder (src/image/jpeg-stream.ts, its wasm in Node 22's V8) against native
 * djpeg (Debian 12's libjpeg-turbo 2.1.5 with its x86 SIMD) and the Worker's current decoder
 * (src/image/jpeg.ts, @cwasm/jpeg-turbo's wasm) on the same files at the same DCT scale, and checks the
 * pixels against djpeg's. Figures for docs/jpeg-decoder.md.
 *
 * Usage (from the repository root, after `/usr/bin/python3 scripts/make_jpeg_stream_fixtures.py --bench`;
 * djpeg from apt's libjpeg-turbo-progs):
 *   node --import ./bench/jpeg-stream/loader.mjs bench/jpeg-stream/run.mjs [--runs 9] [--target 224] [--chunk 65536] [files...]
 *   (`--help` lists the options)
 * Default files: bench/.jpeg-stream/{baseline,progressive}-12mp.jpg. Each figure is the median of --runs runs
 * (after one warm-up), with the fastest and slowest, as wall time and as CPU time (user + system): on a
 * shared machine the CPU time is the steadier one. The wasm decode is fed in 64 KiB chunks, as a body
 * arrives; djpeg's figures are its whole process (its CPU time from bash's `times`; the start-up alone,
 * `djpeg -version`, is measured apart and shown).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseCli, usageError } from "../../scripts/lib/cli.mjs";
import { decodeJpeg, dctScale } from "../../src/image/jpeg.ts";
import { JpegStream } from "../../src/image/jpeg-stream.ts";

const spec = {
  name: "jpeg-stream-bench",
  summary:
    "Times the streaming JPEG decoder against native djpeg and the Worker's current decoder (jpeg.ts) at the same DCT scale, and checks its pixels against djpeg's. Run with node --import ./bench/jpeg-stream/loader.mjs.",
  positionals: "[FILE.jpg ...]",
  options: {
    runs: { type: "string", default: "9", value: "N", help: "Timed runs per decoder and file, after one warm-up." },
    target: { type: "string", default: "224", value: "PX", help: "The model's input side, which picks the DCT scale as the Worker does." },
    chunk: { type: "string", default: "65536", value: "BYTES", help: "Bytes per push into the streaming decoder, as a body arrives." },
  },
  examples: ["node --import ./bench/jpeg-stream/loader.mjs bench/jpeg-stream/run.mjs --runs 5 bench/.jpeg-stream/baseline-12mp.jpg"],
};
const { values, positionals } = parseCli(spec);
const [runs, target, chunk] = [values.runs, values.target, values.chunk].map(Number);
if (![runs, target, chunk].every((n) => Number.isInteger(n) && n > 0))
  usageError(spec, "--runs, --target and --chunk must be positive integers");
const files = positionals.length ? positionals : ["bench/.jpeg-stream/baseline-12mp.jpg", "bench/.jpeg-stream/progressive-12mp.jpg"];

const stats = (times) => {
  const s = [...times].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};
const fmt = ({ median, min, max }) => `${median.toFixed(1)} ms (${min.toFixed(1)}-${max.toFixed(1)})`;
const fmt2 = (t) => `wall ${fmt(t)}, cpu ${fmt(t.cpu)}`;

function streamDecode(bytes) {
  const stream = JpegStream.create(target, 256 * 1024 * 1024);
  const parts = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(stream.push(bytes.subarray(i, i + chunk)));
  parts.push(stream.finish());
  const { header, peakBytes, memoryBytes, scans } = stream;
  stream.dispose();
  const out = new Uint8Array(header.outWidth * header.outHeight * 3);
  for (const p of parts) out.set(p.data, p.firstRow * p.width * 3);
  return { header, peakBytes, memoryBytes, scans, pixels: out };
}

/** Runs fn; its CPU time is this process's, or what fn returns as `cpuMs` (a child's). */
function timed(fn) {
  fn(); // warm-up: compiles the wasm tiers, fills caches
  const times = [];
  const cpu = [];
  let result;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    result = fn();
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push(result?.cpuMs ?? (c.user + c.system) / 1000);
  }
  return { ...stats(times), cpu: stats(cpu), result };
}

/** djpeg in bash, which then prints its children's user and system time (`times`). */
function djpeg(args) {
  const out = execFileSync("bash", ["-c", 'djpeg "$@" && times', "djpeg", ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const children = out.trim().split("\n").pop(); // "0m0.031s 0m0.004s"
  const seconds = children.split(" ").map((t) => {
    const [m, s] = t.replace("s", "").split("m");
    return Number(m) * 60 + Number(s);
  });
  return { cpuMs: (seconds[0] + seconds[1]) * 1000 };
}

function djpegPixels(path, n) {
  const ppm = execFileSync("djpeg", ["-scale", `${n}/8`, "-rgb", "-ppm", path], { maxBuffer: 1 << 30 });
  // P6\n<w> <h>\n255\n<data>
  let at = 0;
  const fields = [];
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(ppm[at]))) at++;
    const start = at;
    while (!/\s/.test(String.fromCharCode(ppm[at]))) at++;
    fields.push(ppm.subarray(start, at).toString());
  }
  return ppm.subarray(at + 1);
}

function maxDiff(a, b) {
  if (a.length !== b.length) return `sizes differ (${a.length} vs ${b.length})`;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const version = spawnSync("djpeg", ["-version"], { encoding: "utf8" }).stderr.trim();
console.log(`node ${process.version}; ${version}; ${runs} runs, target ${target}, ${chunk}-byte chunks; ${new Date().toISOString()}`);
console.log(
  `load average ${(await import("node:os"))
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
const startup = timed(() => djpeg(["-version"]));
console.log(`djpeg process start-up alone (djpeg -version): ${fmt2(startup)}`);
for (const path of files) {
  const bytes = new Uint8Array(readFileSync(path));
  const first = streamDecode(bytes);
  const { header } = first;
  const n = dctScale(header.width, header.height, target);
  console.log(
    `\n${path}: ${bytes.length} bytes, ${header.width}x${header.height} ${header.progressive ? "progressive" : "baseline"}, ${header.components} components; scale ${n}/8 -> ${header.outWidth}x${header.outHeight}`,
  );
  const stream = timed(() => streamDecode(bytes));
  console.log(
    `  stream wasm:    ${fmt2(stream)}; peak ${(first.peakBytes / 1048576).toFixed(2)} MiB counted, wasm memory ${(first.memoryBytes / 1048576).toFixed(2)} MiB; scans ${first.scans.read} (${first.scans.skipped} skipped unread); compactStore ${header.compactStore}`,
  );
  const native = timed(() => djpeg(["-scale", `${n}/8`, "-outfile", "/dev/null", path]));
  console.log(`  djpeg native:   ${fmt2(native)} (process included)`);
  try {
    const current = timed(() => decodeJpeg(bytes, target));
    console.log(`  current (jpeg.ts, whole file): ${fmt2(current)}; wasm memory ${(current.result.memoryBytes / 1048576).toFixed(2)} MiB`);
    console.log(
      `  max |stream - current| = ${maxDiff(first.pixels, current.result.image.channels === 3 ? current.result.image.data : first.pixels)}`,
    );
  } catch (error) {
    console.log(`  current (jpeg.ts): ${error.message}`);
  }
  console.log(`  max |stream - djpeg| = ${maxDiff(first.pixels, djpegPixels(path, n))}`);
}
