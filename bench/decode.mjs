#!/usr/bin/env node
/**
 * Decoding speed, ours beside native peers, on the same files in one run: the Worker's decoders (their wasm in
 * Node 22's V8) against native djpeg (libjpeg-turbo with its x86 SIMD) and Pillow.
 *
 * Usage: npm run bench:decode [-- --repeats 7] [--json]
 *   (node --import ./bench/jpeg-stream/loader.mjs bench/decode.mjs --help lists the options)
 *
 * Files: bench/.inputs/decode/, written once by bench/make_decode_inputs.py (run here when one is missing):
 * 12 MP baseline and progressive phone photos, a 1920x1440 progressive web JPEG, phone and 4K screenshot PNGs
 * and a 1080p lossless WebP. What is timed, per file:
 *   ours    JPEG: src/image/jpeg-stream.ts JpegStream at the DCT scale the Worker picks for a 224 model (decode
 *           side 2 x 256 = 512, dctScale), fed 64 KiB at a time; PNG: src/image/png-stream.ts createPngStream
 *           (every row, none kept); WebP: src/image/webp.ts decodeWebp to webpDecodeSize(..., 512). The wasm is
 *           instantiated per decode, as per request in the Worker. Resizing to the model's input is not timed.
 *   djpeg   `djpeg -scale N/8 -outfile /dev/null FILE`, the same N/8: its whole process.
 *   Pillow  a fresh /usr/bin/python3 that opens the file, draft("RGB", size at N/8) for a JPEG (Pillow's draft
 *           only has 1/1, 1/2, 1/4 and 1/8, so it may decode larger than N/8: its output size is shown), and
 *           load(): its whole process; the decode alone (after `import PIL`) is reported beside it.
 * Nothing is subtracted from a peer's figure: each peer's process start-up, the same command on a 1x1 image,
 * is measured and shown apart. Runs are interleaved (ours, djpeg, Pillow, ours, ...) after one warm-up of each,
 * so a noisy neighbour slows all of them alike; each figure is the median of --repeats wall times, with the
 * fastest and slowest. Run it niced on a shared machine: `nice npm run bench:decode`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { dctScale } from "../src/image/jpeg.ts";
import { JpegStream } from "../src/image/jpeg-stream.ts";
import { createPngStream } from "../src/image/png-stream.ts";
import { sniffImage } from "../src/image/sniff.ts";
import { decodeWebp, webpDecodeSize } from "../src/image/webp.ts";

const spec = {
  name: "bench:decode",
  summary:
    "Times the Worker's JPEG, PNG and WebP decoders against djpeg and Pillow on the same files, interleaved, and prints per file the medians, their ratio and the spread.",
  options: {
    repeats: { type: "string", default: "7", value: "N", help: "Timed runs of each decoder per file, after one warm-up." },
    json: { type: "boolean", default: false, help: "Print one JSON object on stdout, the table on stderr." },
    side: { type: "string", default: "512", value: "PX", help: "The decode side (2 x the 256 resize of a 224 model, as the Worker)." },
  },
  examples: ["nice npm run bench:decode", "nice npm run bench:decode -- --repeats 3 --json > decode.json"],
};
const { values } = parseCli(spec);
const repeats = Number(values.repeats);
const side = Number(values.side);
if (!(Number.isInteger(repeats) && repeats > 0)) usageError(spec, `--repeats must be a positive integer, not ${values.repeats}`);
if (!(Number.isInteger(side) && side > 0)) usageError(spec, `--side must be a positive integer, not ${values.side}`);

const root = join(import.meta.dirname, "..");
const dir = join(root, "bench/.inputs/decode");
const FILES = [
  "baseline-12mp.jpg",
  "progressive-12mp.jpg",
  "progressive-web.jpg",
  "screenshot-phone.png",
  "screenshot-4k.png",
  "lossless-1080p.webp",
];
const PYTHON = "/usr/bin/python3";
const CHUNK = 65536;
const BACKGROUND = [255, 255, 255];
const MEMORY_CAP = 256 * 1048576;
const log = (line) => (values.json ? console.error(line) : console.log(line));

if (![...FILES, "tiny.jpg", "tiny.png"].every((name) => existsSync(join(dir, name)))) {
  log("writing bench/.inputs/decode (once) ...");
  execFileSync(PYTHON, [join(root, "bench/make_decode_inputs.py"), dir], { stdio: ["ignore", "inherit", "inherit"] });
}

// Pillow in a fresh interpreter, as djpeg is a fresh process: prints its import and decode times and the size.
const PILLOW = `
import sys, time
t0 = time.perf_counter()
from PIL import Image
t1 = time.perf_counter()
im = Image.open(sys.argv[1])
if sys.argv[2] != "0":
    im.draft("RGB", (int(sys.argv[2]), int(sys.argv[3])))
im.load()
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000, im.size[0], im.size[1])
`;

function timeProcess(command, args) {
  const t0 = performance.now();
  const run = spawnSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`${command} ${args.join(" ")}: exit ${run.status}: ${run.stderr}`);
  return { ms, stdout: run.stdout };
}

const djpeg = (path, n) => timeProcess("djpeg", ["-scale", `${n}/8`, "-outfile", "/dev/null", path]);

function pillow(path, draft) {
  const { ms, stdout } = timeProcess(PYTHON, ["-c", PILLOW, path, String(draft?.width ?? 0), String(draft?.height ?? 0)]);
  const [importMs, decodeMs, width, height] = stdout.trim().split(" ").map(Number);
  return { ms, importMs, decodeMs, width, height };
}

function oursJpeg(bytes) {
  const t0 = performance.now();
  const stream = JpegStream.create(side, MEMORY_CAP);
  let rows = 0;
  try {
    for (let at = 0; at < bytes.length; at += CHUNK) rows += stream.push(bytes.subarray(at, at + CHUNK)).rowCount;
    rows += stream.finish().rowCount;
  } finally {
    stream.dispose();
  }
  const { outWidth, outHeight } = stream.header;
  if (rows !== outHeight) throw new Error(`JpegStream gave ${rows} rows of ${outHeight}`);
  return { ms: performance.now() - t0, width: outWidth, height: outHeight };
}

async function oursPng(bytes) {
  const t0 = performance.now();
  let rows = 0;
  const stream = createPngStream({ background: BACKGROUND, onRow: () => rows++ });
  for (let at = 0; at < bytes.length; at += CHUNK) await stream.push(bytes.subarray(at, at + CHUNK));
  const { width, height } = await stream.finish();
  if (rows !== height) throw new Error(`createPngStream gave ${rows} rows of ${height}`);
  return { ms: performance.now() - t0, width, height };
}

/**
 * png-stream.ts reads the inflater with a BYOB reader, which workerd's DecompressionStream allows (its readable
 * is a byte stream) and Node's does not: here Node's inflater is wrapped in a byte stream, which costs one more
 * copy of the inflated data than the Worker makes (a memcpy of width x height x 3 bytes: small beside inflate).
 */
const NodeDecompressionStream = globalThis.DecompressionStream;
globalThis.DecompressionStream = class ByteDecompressionStream {
  constructor(format) {
    const inner = new NodeDecompressionStream(format);
    const reader = inner.readable.getReader();
    let pending = null;
    this.writable = inner.writable;
    this.readable = new ReadableStream({
      type: "bytes",
      async pull(controller) {
        if (!pending) {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            controller.byobRequest?.respond(0);
            return;
          }
          pending = value;
        }
        const request = controller.byobRequest;
        if (!request) {
          controller.enqueue(pending.slice());
          pending = null;
          return;
        }
        const view = request.view;
        const n = Math.min(view.byteLength, pending.length);
        new Uint8Array(view.buffer, view.byteOffset, n).set(pending.subarray(0, n));
        pending = n < pending.length ? pending.subarray(n) : null;
        request.respond(n);
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
};

function oursWebp(bytes, header) {
  const t0 = performance.now();
  const size = webpDecodeSize(header.width, header.height, side);
  const { image } = decodeWebp(bytes, size, header.alpha, BACKGROUND, MEMORY_CAP);
  return { ms: performance.now() - t0, width: image.width, height: image.height };
}

const stats = (runs, key = "ms") => {
  const s = runs.map((r) => r[key]).sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], runs: runs.map((r) => r[key]) };
};

const lscpu = spawnSync("lscpu", { encoding: "utf8" }).stdout ?? "";
const machine = lscpu.match(/^Model name:\s*(.+)$/m)?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
const pillowVersion = execFileSync(PYTHON, ["-c", "import PIL; print(PIL.__version__)"], { encoding: "utf8" }).trim();
const djpegVersion = spawnSync("djpeg", ["-version"], { encoding: "utf8" }).stderr.trim();
const report = {
  date: new Date().toISOString(),
  machine,
  cpus: cpus().length,
  loadavg: loadavg().map((l) => Number(l.toFixed(2))),
  node: process.version,
  djpeg: djpegVersion,
  pillow: pillowVersion,
  command: `npm run bench:decode -- --repeats ${repeats}`,
  repeats,
  decodeSide: side,
  startup: {},
  files: [],
};
log(`${report.date}; ${machine}, ${report.cpus} CPUs, load ${report.loadavg.join(" ")}`);
log(`node ${report.node}; ${djpegVersion}; Pillow ${pillowVersion}; ${repeats} interleaved repeats, decode side ${side}`);

// Process start-up: each peer on a 1x1 image, interleaved the same way.
{
  const tinyJpeg = join(dir, "tiny.jpg");
  const runs = { djpeg: [], pillow: [] };
  djpeg(tinyJpeg, 8);
  pillow(tinyJpeg);
  for (let i = 0; i < repeats; i++) {
    runs.djpeg.push(djpeg(tinyJpeg, 8));
    runs.pillow.push(pillow(tinyJpeg));
  }
  report.startup = {
    djpeg: stats(runs.djpeg),
    pillow: { ...stats(runs.pillow), import: stats(runs.pillow, "importMs") },
  };
}

for (const name of FILES) {
  const path = join(dir, name);
  const bytes = new Uint8Array(readFileSync(path));
  const header = sniffImage(bytes);
  const entry = { file: relative(root, path), type: header.type, bytes: bytes.length, width: header.width, height: header.height };
  let ours;
  let peers;
  if (header.type === "jpeg") {
    const n = dctScale(header.width, header.height, side);
    const draft = { width: Math.ceil((header.width * n) / 8), height: Math.ceil((header.height * n) / 8) };
    entry.progressive = header.progressive;
    entry.scale = `${n}/8`;
    ours = () => oursJpeg(bytes);
    peers = { djpeg: () => djpeg(path, n), pillow: () => pillow(path, draft) };
  } else if (header.type === "png") {
    ours = () => oursPng(bytes);
    peers = { pillow: () => pillow(path) };
  } else {
    ours = () => oursWebp(bytes, header);
    peers = { pillow: () => pillow(path) };
  }
  // One warm-up of each: the wasm compiled, caches filled, the file in the page cache.
  await ours();
  for (const run of Object.values(peers)) run();
  const runs = { ours: [], ...Object.fromEntries(Object.keys(peers).map((peer) => [peer, []])) };
  for (let i = 0; i < repeats; i++) {
    runs.ours.push(await ours());
    for (const [peer, run] of Object.entries(peers)) runs[peer].push(run());
  }
  entry.ours = { ...stats(runs.ours), out: `${runs.ours[0].width}x${runs.ours[0].height}` };
  if (runs.djpeg) entry.djpeg = stats(runs.djpeg); // its output: N/8 as ours, by libjpeg-turbo's own rounding
  const p = runs.pillow;
  entry.pillow = { ...stats(p), decode: stats(p, "decodeMs"), out: `${p[0].width}x${p[0].height}` };
  if (entry.djpeg) entry.oursOverDjpeg = entry.ours.median / entry.djpeg.median;
  entry.oursOverPillow = entry.ours.median / entry.pillow.median;
  entry.oursOverPillowDecode = entry.ours.median / entry.pillow.decode.median;
  report.files.push(entry);
  log(
    `${name}: ours ${entry.ours.median.toFixed(1)} ms${entry.djpeg ? `, djpeg ${entry.djpeg.median.toFixed(1)} ms` : ""}, Pillow ${entry.pillow.median.toFixed(1)} ms`,
  );
}

const baseline = report.files.find((f) => f.file.endsWith("baseline-12mp.jpg"));
report.goal = {
  text: "12 MP baseline JPEG in <= 1.5x native djpeg at the same scale",
  ratio: baseline.oursOverDjpeg,
  met: baseline.oursOverDjpeg <= 1.5,
};

// The table goes to stdout, or with --json to stderr beside the JSON on stdout.
const ms = (s) => `${s.median.toFixed(1)} (${s.min.toFixed(1)}-${s.max.toFixed(1)})`;
const su = report.startup;
const table = [
  "",
  `Process start-up on a 1x1 JPEG (included in every peer figure below): djpeg ${ms(su.djpeg)} ms; python3 + Pillow ${ms(su.pillow)} ms, of which import PIL ${su.pillow.import.median.toFixed(1)} ms`,
  "",
  "| file | decoded to | ours ms | djpeg ms | ours/djpeg | Pillow ms (process) | Pillow decode ms (in process) | Pillow decoded to | ours/Pillow |",
  "|---|---|---|---|---|---|---|---|---|",
];
for (const f of report.files) {
  const kind = f.type === "jpeg" ? `${f.progressive ? "progressive" : "baseline"} JPEG` : f.type === "png" ? "PNG" : "WebP lossless";
  const djpegCells = f.djpeg ? [ms(f.djpeg), f.oursOverDjpeg.toFixed(2)] : ["-", "-"];
  const cells = [
    `${f.file.split("/").pop()}: ${f.width}x${f.height} ${kind}, ${(f.bytes / 1e6).toFixed(2)} MB`,
    `${f.scale ? `${f.scale} = ` : ""}${f.ours.out}`,
    ms(f.ours),
    ...djpegCells,
    ms(f.pillow),
    ms(f.pillow.decode),
    f.pillow.out,
    f.oursOverPillow.toFixed(2),
  ];
  table.push(`| ${cells.join(" | ")} |`);
}
table.push("", `Goal (${report.goal.text}): ${report.goal.ratio.toFixed(2)}x, ${report.goal.met ? "met" : "not met"}.`);
for (const line of table) log(line);
if (values.json) console.log(JSON.stringify(report, null, 2));
