#!/usr/bin/env node
/**
 * The streaming decoder's peak counted memory (jls_peak_bytes) on one file at given n/8 DCT scales, with the
 * committed module and, with --old, another build of it (e.g. `git show REV:src/image/jpeg/libjpeg-stream.wasm`),
 * and whether both give the same pixels. Figures for docs/jpeg-decoder.md.
 *
 * Usage (`--help` lists the options):
 *   node --import ./bench/jpeg-stream/loader.mjs bench/jpeg-stream/measure-store.mjs [--old old.wasm] file.jpg 1 2 3 4
 */
import { readFileSync } from "node:fs";
import { parseCli, usageError } from "../../scripts/lib/cli.mjs";
import { JpegStream } from "../../src/image/jpeg-stream.ts";

const spec = {
  name: "measure-store",
  summary:
    "Prints the streaming JPEG decoder's peak counted memory on FILE.jpg at each n/8 DCT scale given, and with --old compares another build's peak and pixels. Run with node --import ./bench/jpeg-stream/loader.mjs.",
  positionals: "FILE.jpg N...",
  options: {
    old: { type: "string", value: "WASM", help: "Another build of libjpeg-stream.wasm to measure beside the committed one." },
  },
  examples: [
    "git show HEAD~1:src/image/jpeg/libjpeg-stream.wasm > /tmp/old.wasm",
    "node --import ./bench/jpeg-stream/loader.mjs bench/jpeg-stream/measure-store.mjs --old /tmp/old.wasm file.jpg 1 2 3 4",
  ],
};
const { values, positionals } = parseCli(spec);
const [file, ...scales] = positionals;
if (!file || !scales.length) usageError(spec, "expected a JPEG file and at least one scale n (1-8)");
if (!scales.every((n) => /^[1-8]$/.test(n))) usageError(spec, `scales are integers 1-8, got ${scales.join(" ")}`);
const old = values.old ? new WebAssembly.Module(readFileSync(values.old)) : undefined;
const bytes = readFileSync(file);

function run(target, module) {
  const s = JpegStream.create(target, 1800 * 1048576, module ? { module } : {});
  try {
    const parts = [];
    for (let at = 0; at < bytes.length; at += 65536) {
      const r = s.push(bytes.subarray(at, at + 65536));
      if (r.rowCount) parts.push(r.data.slice());
    }
    const r = s.finish();
    if (r.rowCount) parts.push(r.data.slice());
    return { header: s.header, peak: s.peakBytes, pixels: Buffer.concat(parts) };
  } finally {
    s.dispose();
  }
}

const MiB = 1048576;
for (const n of scales.map(Number)) {
  const probe = run(1, undefined).header;
  const target = Math.ceil((Math.min(probe.width, probe.height) * n) / 8);
  const now = run(target, undefined);
  let line = `${file} ${probe.width}x${probe.height} at ${now.header.scale}/8: peak ${now.peak} (${(now.peak / MiB).toFixed(2)} MiB)`;
  if (old) {
    const before = run(target, old);
    line += `; before ${before.peak} (${(before.peak / MiB).toFixed(2)} MiB); pixels ${Buffer.compare(now.pixels, before.pixels) === 0 ? "identical" : "DIFFER"}`;
  }
  console.log(line);
}
