#!/usr/bin/env node
/**
 * Usage: node scripts/run-onnx.mjs MODEL.onnx INPUT.f32 --shape N,H,W,C [--out OUT.f32] [--batch 64]
 *   (`node scripts/run-onnx.mjs --help` lists the options; needs `npm run bench:peers:install` once)
 *
 * Runs an ONNX graph on onnxruntime-node (native CPU) or onnxruntime-web (WebAssembly) over a raw
 * little-endian float32 input file, in batches along the first axis, and writes one output's values
 * (float32, concatenated in input order) to --out, or prints them as JSON. training/tests/test_onnx_int8.py
 * and scripts/onnx_top1.py run the int8 graphs of scripts/export_onnx.py through it: Python has no
 * onnxruntime here (no PyPI), Node has it from npm. Exits 3 when onnxruntime is not installed.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseCli, usageError } from "./lib/cli.mjs";

const spec = {
  name: "run-onnx",
  summary: "Runs MODEL.onnx on onnxruntime over the float32 tensor in INPUT.f32 and writes one output.",
  positionals: "MODEL.onnx INPUT.f32",
  options: {
    shape: { type: "string", value: "DIMS", help: "The input's shape, comma-separated, first axis the batch (e.g. 4,64,64,3)." },
    out: { type: "string", value: "FILE", help: "Write the output as raw float32 here instead of printing JSON on stdout." },
    output: { type: "string", value: "NAME", help: "Which graph output to return (default: the first)." },
    batch: { type: "string", default: "64", value: "B", help: "Examples per session.run call." },
    threads: { type: "string", default: "1", value: "N", help: "Intra-op threads (inter-op is 1)." },
    runtime: { type: "string", default: "node", value: "NAME", help: "node (onnxruntime-node, native) or web (onnxruntime-web, wasm)." },
    repeat: {
      type: "string",
      default: "0",
      value: "R",
      help: "Also time R more runs of the first batch after one warm-up and report their median ms on stderr.",
    },
  },
  examples: ["node scripts/run-onnx.mjs x.onnx inputs.f32 --shape 4,64,64,3 --out logits.f32"],
};
const { values, positionals } = parseCli(spec);
if (positionals.length !== 2) usageError(spec, "expected MODEL.onnx and INPUT.f32");
if (!values.shape) usageError(spec, "--shape is required");
const shape = values.shape.split(",").map(Number);
if (shape.some((d) => !Number.isInteger(d) || d <= 0)) usageError(spec, `--shape: positive integers, got ${values.shape}`);
const [batch, threads, repeat] = [values.batch, values.threads, values.repeat].map(Number);
if (!(batch > 0 && threads > 0 && repeat >= 0) || ![batch, threads, repeat].every(Number.isInteger))
  usageError(spec, "--batch and --threads must be positive integers, --repeat a non-negative one");
if (!["node", "web"].includes(values.runtime)) usageError(spec, `--runtime must be node or web, not ${values.runtime}`);

const root = new URL("..", import.meta.url).pathname;
const peers = createRequire(join(root, "bench/peers/package.json"));
let ort;
try {
  ort = peers(values.runtime === "node" ? "onnxruntime-node" : "onnxruntime-web");
} catch (error) {
  process.stderr.write(`run-onnx needs onnxruntime: npm run bench:peers:install (${error.message})\n`);
  process.exit(3);
}

const [modelPath, inputPath] = positionals;
const bytes = readFileSync(inputPath);
const input = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const [count, ...rest] = shape;
const size = rest.reduce((a, b) => a * b, 1);
if (input.length !== count * size) usageError(spec, `${inputPath} holds ${input.length} floats, --shape needs ${count * size}`);

const options =
  values.runtime === "node"
    ? { executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" }
    : { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
if (values.runtime === "web") ort.env.wasm.numThreads = threads;
const session = await ort.InferenceSession.create(modelPath, options);
const outputName = values.output ?? session.outputNames[0];
if (!session.outputNames.includes(outputName)) usageError(spec, `no output ${outputName}; the graph has ${session.outputNames.join(", ")}`);

const feed = (start, n) => ({
  [session.inputNames[0]]: new ort.Tensor("float32", input.slice(start * size, (start + n) * size), [n, ...rest]),
});
const chunks = [];
for (let start = 0; start < count; start += batch) {
  const n = Math.min(batch, count - start);
  chunks.push((await session.run(feed(start, n)))[outputName].data);
}
const out = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
let offset = 0;
for (const c of chunks) {
  out.set(c, offset);
  offset += c.length;
}

if (repeat > 0) {
  const first = feed(0, Math.min(batch, count));
  await session.run(first);
  const times = [];
  for (let r = 0; r < repeat; r++) {
    const started = performance.now();
    await session.run(first);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  process.stderr.write(`${JSON.stringify({ ms_p50: times[times.length >> 1], ms_min: times[0], runs: repeat })}\n`);
}
if (values.out) writeFileSync(values.out, Buffer.from(out.buffer));
else process.stdout.write(`${JSON.stringify({ output: outputName, shape: [count, out.length / count], data: Array.from(out) })}\n`);
