#!/usr/bin/env node
/**
 * Usage: npm run bench:peers [-- --json] [--rounds 30] [--kernel-build relaxed-simd|relaxed-simd-madd|simd128]
 *   (`npm run bench:peers -- --help` lists the options)
 *   (once, first: npm run bench:peers:install)
 *
 * The same AlexNet-224 (paper layout, 1000 classes, random weights from scripts/make_bench_package.py) on
 * four runtimes, batch 1, one thread each, interleaved round by round so machine noise hits all alike:
 *   - ours: the Worker's engine inside workerd (int8 convolutions and dense layers, our wasm kernels);
 *   - stock tfjs-wasm fp32: every layer on tfjs-backend-wasm (XNNPACK), same isolate, same package bytes;
 *   - onnxruntime-web: the exporter's fp32 ONNX on the WebAssembly SIMD build, 1 thread, in Node;
 *   - onnxruntime-node: the same ONNX on native onnxruntime (CPU), 1 intra-op and 1 inter-op thread;
 *   - onnxruntime-web and onnxruntime-node int8: the package itself exported by scripts/export_onnx.py (its
 *     int8 weights, the Worker's arithmetic; docs/onnx-export.md), NHWC input, same threads as above.
 * Each round runs one forward pass of each; the first WARMUP rounds are dropped. Prints each runtime's
 * median and spread and its ratio to ours (the median of the per-round ratios).
 * The ONNX holds the fp32 weights before int8 quantization: same network, same shapes, same work.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { unstable_dev } from "wrangler";
import { parseCli, usageError } from "../../scripts/lib/cli.mjs";
import { publishPackage } from "../../scripts/lib/publish.mjs";
import { modelsBucketName, openBucket } from "../../scripts/lib/wrangler-r2.mjs";

// Offline, Miniflare's fetch of a sample Request.cf object prints a stack trace; nothing here reads request.cf.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
const WARMUP = 3;
const BUILDS = ["relaxed-simd", "relaxed-simd-madd", "simd128"]; // KERNEL_BUILDS in src/engine/feature-kernels.ts
const spec = {
  name: "bench:peers",
  summary:
    "Times one forward pass of the same AlexNet-224 on our engine in workerd, stock tfjs-wasm fp32, onnxruntime-web and onnxruntime-node (fp32 and the int8 export), round by round.",
  options: {
    json: { type: "boolean", default: false, help: "Print one JSON object on stdout (progress and wrangler's logging go to stderr)." },
    rounds: {
      type: "string",
      default: "30",
      value: "N",
      help: `Timed rounds, each one forward pass of every runtime, after ${WARMUP} warm-up rounds.`,
    },
    "kernel-build": {
      type: "string",
      value: "BUILD",
      help: `The build of our int8 convolution kernels, one of ${BUILDS.join(", ")} (default: the best the runtime accepts).`,
    },
  },
  examples: ["npm run bench:peers:install   (once, first)", "npm run bench:peers -- --rounds 10"],
};
const { values } = parseCli(spec);
const json = values.json;
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds <= 0) usageError(spec, `--rounds must be a positive integer, got ${values.rounds}`);
const kernelBuild = values["kernel-build"];
if (kernelBuild !== undefined && !BUILDS.includes(kernelBuild))
  usageError(spec, `--kernel-build must be one of ${BUILDS.join(", ")}, not ${kernelBuild}`);
const log = (...m) => (json ? process.stderr : process.stdout).write(`${m.join(" ")}\n`);
if (json) console.log = console.info = console.warn = (...m) => process.stderr.write(`${m.join(" ")}\n`);

const root = new URL("../..", import.meta.url).pathname;
const packageDir = join(root, "bench/.packages/alexnet-random-224");
const onnxPath = `${packageDir}.onnx`;
const int8OnnxPath = `${packageDir}.int8.onnx`;
const INT8_FORM = "cast"; // scripts/export_onnx.py's default form
const stateDir = join(root, "bench/.state/peers");
const peers = createRequire(join(root, "bench/peers/package.json"));
let ortWeb;
let ortNode;
try {
  // Order matters: both register a backend named "cpu" in the one onnxruntime-common they share, and whichever
  // loads first keeps it. With onnxruntime-web first, onnxruntime-node's "cpu" sessions ran on web's wasm
  // backend (~100 ms instead of ~35 here); main() also checks that the two sessions have different handlers.
  ortNode = peers("onnxruntime-node");
  ortWeb = peers("onnxruntime-web");
} catch (error) {
  process.stderr.write(`bench:peers needs its own dependencies: npm run bench:peers:install (${error.message})\n`);
  process.exit(2);
}

/** A peer's installed version, read from its folder: onnxruntime-web's `exports` do not expose package.json. */
const peerVersion = (name) => JSON.parse(readFileSync(join(root, "bench/peers/node_modules", name, "package.json"), "utf8")).version;

if (!existsSync(join(packageDir, "manifest.json")) || !existsSync(onnxPath)) {
  log("generating the random 224x224 AlexNet package and its ONNX (~60 + 250 MB, once) ...");
  execFileSync("sh", ["scripts/python.sh", "scripts/make_bench_package.py", packageDir], {
    cwd: root,
    stdio: ["ignore", 2, "inherit"], // its output to stderr: stdout carries only the --json result,
  });
}
const stale = (path) => !existsSync(path) || statSync(path).mtimeMs < statSync(join(packageDir, "manifest.json")).mtimeMs;
if (stale(int8OnnxPath)) {
  log("exporting the package as int8 ONNX (scripts/export_onnx.py, once) ...");
  execFileSync(
    "sh",
    ["scripts/python.sh", "scripts/export_onnx.py", packageDir, "--out", int8OnnxPath, "--form", INT8_FORM, "--no-check"],
    {
      cwd: root,
      stdio: ["ignore", 2, "inherit"], // its output to stderr: stdout carries only the --json result,
    },
  );
}
const manifest = JSON.parse(readFileSync(join(packageDir, "manifest.json"), "utf8"));
const { height, width, channels } = manifest.input;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const spread = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });

/** `nhwc`: the int8 export takes the Worker's NHWC input; the fp32 ONNX takes PyTorch's NCHW. */
async function onnxSession(ort, options, path = onnxPath, nhwc = false) {
  const session = await ort.InferenceSession.create(path, options);
  const input = new ort.Tensor(
    "float32",
    new Float32Array(channels * height * width).map((_, i) => Math.sin(i)),
    nhwc ? [1, height, width, channels] : [1, channels, height, width],
  );
  const run = async () => {
    const started = performance.now();
    await session.run({ [session.inputNames[0]]: input });
    return performance.now() - started;
  };
  return Object.assign(run, { handler: session.handler });
}

async function main() {
  log(`seeding local R2 with ${manifest.id} ...`);
  rmSync(stateDir, { recursive: true, force: true });
  const config = join(root, "bench/wrangler.bench.toml");
  await publishPackage(
    openBucket({ bucket: modelsBucketName(config), mode: "local", persistTo: stateDir, cwd: root, log: () => {} }),
    packageDir,
    { log: () => {} },
  );
  const worker = await unstable_dev(join(root, "bench/worker.ts"), {
    config,
    persistTo: stateDir,
    vars: { POINTER_CHECK_SECONDS: "3600", ...(kernelBuild ? { KERNEL_BUILD: kernelBuild } : {}) },
    logLevel: "warn",
    experimental: { disableExperimentalWarning: true },
  });
  try {
    ortWeb.env.wasm.numThreads = 1;
    ortWeb.env.wasm.simd = true;
    log("loading onnxruntime-web and onnxruntime-node sessions ...");
    const web = await onnxSession(ortWeb, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    const nativeOptions = {
      executionProviders: ["cpu"],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
    };
    const native = await onnxSession(ortNode, nativeOptions);
    const webInt8 = await onnxSession(ortWeb, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }, int8OnnxPath, true);
    const nativeInt8 = await onnxSession(ortNode, nativeOptions, int8OnnxPath, true);
    if (Object.getPrototypeOf(native.handler) === Object.getPrototypeOf(web.handler)) {
      throw new Error("onnxruntime-node's session runs on onnxruntime-web's backend: the native figure would be wasm");
    }
    const pair = async () => {
      const response = await worker.fetch("/__bench/compare?n=1");
      if (!response.ok) throw new Error(`/__bench/compare: ${response.status} ${await response.text()}`);
      return response.json();
    };
    await pair(); // loads our model and builds the stock network
    const memory = await (await worker.fetch("/__bench/memory")).json();
    const times = { ours: [], tfjs: [], web: [], native: [], webInt8: [], nativeInt8: [] };
    for (let r = 0; r < rounds + WARMUP; r++) {
      const inWorkerd = await pair();
      const t = {
        ours: inWorkerd.ours[0],
        tfjs: inWorkerd.stock[0],
        web: await web(),
        native: await native(),
        webInt8: await webInt8(),
        nativeInt8: await nativeInt8(),
      };
      if (r >= WARMUP) for (const k of Object.keys(times)) times[k].push(t[k]);
      log(
        `round ${r + 1}/${rounds + WARMUP}${r < WARMUP ? " (warm-up)" : ""}: ours ${t.ours.toFixed(1)}, tfjs-wasm ${t.tfjs.toFixed(1)}, ort-web ${t.web.toFixed(1)}, ort-node ${t.native.toFixed(1)}, ort-web int8 ${t.webInt8.toFixed(1)}, ort-node int8 ${t.nativeInt8.toFixed(1)} ms`,
      );
    }
    return { times, kernel: memory.kernel_build };
  } finally {
    await worker.stop();
  }
}

const { times, kernel } = await main();
const ratio = (k) => median(times[k].map((t, i) => t / times.ours[i]));
const result = {
  model: manifest.id,
  kernel_build: kernel,
  rounds,
  ours_ms_p50: median(times.ours),
  tfjs_wasm_fp32_ms_p50: median(times.tfjs),
  onnxruntime_web_ms_p50: median(times.web),
  onnxruntime_node_ms_p50: median(times.native),
  onnxruntime_web_int8_ms_p50: median(times.webInt8),
  onnxruntime_node_int8_ms_p50: median(times.nativeInt8),
  onnx_int8_form: INT8_FORM,
  spread_ms: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, spread(v)])),
  ratio_to_ours_p50: {
    tfjs_wasm_fp32: ratio("tfjs"),
    onnxruntime_web: ratio("web"),
    onnxruntime_node: ratio("native"),
    onnxruntime_web_int8: ratio("webInt8"),
    onnxruntime_node_int8: ratio("nativeInt8"),
  },
  versions: { onnxruntime_web: peerVersion("onnxruntime-web"), onnxruntime_node: peerVersion("onnxruntime-node") },
};
if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const row = (name, k, r) => {
    const s = result.spread_ms[k];
    log(
      `${name.padEnd(26)} ${s.median.toFixed(1).padStart(7)} ms  (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, n=${s.n})${r === undefined ? "" : `   ${r.toFixed(2)}x ours`}`,
    );
  };
  log("");
  row(`ours (workerd, ${kernel})`, "ours");
  row("stock tfjs-wasm fp32", "tfjs", result.ratio_to_ours_p50.tfjs_wasm_fp32);
  row("onnxruntime-web 1 thread", "web", result.ratio_to_ours_p50.onnxruntime_web);
  row("onnxruntime-node 1 thread", "native", result.ratio_to_ours_p50.onnxruntime_node);
  row("onnxruntime-web int8", "webInt8", result.ratio_to_ours_p50.onnxruntime_web_int8);
  row("onnxruntime-node int8", "nativeInt8", result.ratio_to_ours_p50.onnxruntime_node_int8);
}
