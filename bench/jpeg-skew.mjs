#!/usr/bin/env node
/**
 * JPEG train/serve skew: does the Worker's reduced-scale JPEG decode change the model's answers, compared with
 * the full decode training does (PIL)?
 *
 * Usage: node bench/jpeg-skew.mjs [--count 300] [--sizes 112,224,448,896,1792] [--model DIR] [--port 8852] [--images DIR]
 *   (`--help` lists the options)
 *
 * Steps: bench/jpeg_skew_images.py writes, per size, each image as an RGB JPEG (quality 90) and, as lossless
 * PNGs at the model's input size, what PIL makes of that JPEG with training's transform (full decode), and with
 * Image.draft() (PIL's reduced DCT scale). Then a wrangler dev serving the model classifies, all through the
 * Worker's own pipeline and int8 engine: (a) the JPEG itself, decoded by the Worker at its reduced DCT scale;
 * (b) the PIL full-decode view; (c) the PIL draft view; and the original 28x28 PNG. Prints, per size, top-1
 * accuracy of each against the label, the agreement of (a) and (c) with (b) (same top-1 label), and the mean
 * total variation distance between their score distributions (finer than top-1: 0 means identical scores).
 * The PNGs are at the model's input size, so the Worker only normalises them: the model sees what training sees.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseCli, usageError } from "../scripts/lib/cli.mjs";
import { openLocalBucket } from "../scripts/lib/local-r2.mjs";
import { findDefaultPackage } from "../scripts/lib/model-package.mjs";
import { publishPackage } from "../scripts/lib/publish.mjs";
import { startWranglerDev } from "../scripts/lib/wrangler-dev.mjs";
import { modelsBucketName } from "../scripts/lib/wrangler-r2.mjs";

const root = resolve(import.meta.dirname, "..");
const spec = {
  name: "jpeg-skew",
  summary:
    "Compares the Worker's reduced-scale JPEG decode with training's full decode (PIL): top-1 accuracy, agreement and score distance, per size.",
  options: {
    count: { type: "string", default: "300", value: "N", help: "How many Fashion-MNIST test images, from the first." },
    sizes: {
      type: "string",
      default: "112,224,448,896,1792",
      value: "LIST",
      help: "The sizes in px, comma-separated, the 28x28 images are upscaled to before JPEG encoding.",
    },
    model: { type: "string", value: "DIR", help: "The package to serve (default: the one in model/)." },
    port: { type: "string", default: "8852", value: "N", help: "The port of the wrangler dev it starts on 127.0.0.1." },
    images: {
      type: "string",
      value: "DIR",
      help: "Where bench/jpeg_skew_images.py writes the images, reused if complete (default: bench/.jpeg-skew).",
    },
  },
};
const { values } = parseCli(spec);
const positiveInteger = (text) => Number.isInteger(Number(text)) && Number(text) > 0;
for (const name of ["count", "port"])
  if (!positiveInteger(values[name])) usageError(spec, `--${name} must be a positive integer, got ${values[name]}`);
if (!values.sizes.split(",").every(positiveInteger))
  usageError(spec, `--sizes must be positive integers separated by commas, got ${values.sizes}`);
const BATCH = 8; // MAX_BATCH_IMAGES in src/config.ts
const log = (line) => console.error(line);

const packageDir = values.model ? resolve(values.model) : findDefaultPackage(join(root, "model"));
const manifest = JSON.parse(readFileSync(join(packageDir, "manifest.json"), "utf8"));
const imagesDir = values.images ? resolve(values.images) : join(root, "bench/.jpeg-skew");
const wanted = { count: Number(values.count), sizes: values.sizes.split(",").map(Number), input: manifest.preprocess.resize.shorter_side };

function imagesReady() {
  const indexPath = join(imagesDir, "index.json");
  if (!existsSync(indexPath)) return false;
  const index = JSON.parse(readFileSync(indexPath, "utf8"));
  return index.count === wanted.count && index.input === wanted.input && index.sizes.join() === wanted.sizes.join();
}

if (!imagesReady()) {
  log(`writing ${wanted.count} images at ${wanted.sizes.join(", ")} px to ${imagesDir} ...`);
  const python = spawnSync(
    "sh",
    [
      "scripts/python.sh",
      "bench/jpeg_skew_images.py",
      imagesDir,
      "--count",
      String(wanted.count),
      "--sizes",
      values.sizes,
      "--size",
      String(wanted.input),
    ],
    { cwd: root, stdio: ["ignore", "inherit", "inherit"] },
  );
  if (python.status !== 0) process.exit(1);
}
const index = JSON.parse(readFileSync(join(imagesDir, "index.json"), "utf8"));

/** Each file's predictions ({label: score} over every class), through POST /v1/classify, 8 to a multipart batch. */
async function classify(url, files, type) {
  const answers = [];
  for (let i = 0; i < files.length; i += BATCH) {
    const form = new FormData();
    for (const file of files.slice(i, i + BATCH)) form.append("image", new Blob([readFileSync(file)], { type }), file);
    form.append("top_k", String(index.classes.length));
    const response = await fetch(`${url}/v1/classify`, { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(`${files[i]}...: ${response.status} ${JSON.stringify(body)}`);
    for (const result of body.results) answers.push(Object.fromEntries(result.predictions.map((p) => [p.label, p.score])));
  }
  return answers;
}

const top1 = (answer) => Object.entries(answer).reduce((best, entry) => (entry[1] > best[1] ? entry : best))[0];
/** Total variation distance between two answers' score distributions: 0 same, 1 disjoint. */
const distance = (p, q) => 0.5 * Object.keys(p).reduce((sum, label) => sum + Math.abs(p[label] - (q[label] ?? 0)), 0);

const work = mkdtempSync(join(tmpdir(), "jpeg-skew-"));
const dev = startWranglerDev({
  cwd: root,
  port: Number(values.port),
  persistTo: work,
  stdio: "pipe",
  vars: { POINTER_CHECK_SECONDS: "3600" },
});
process.on("SIGINT", () => dev.stop().then(() => process.exit(130)));
try {
  const bucket = openLocalBucket({ bucket: modelsBucketName(join(root, "wrangler.toml")), persistTo: work });
  try {
    await publishPackage(bucket, packageDir, { log: () => {} });
  } finally {
    await bucket.close();
  }
  await dev.waitFor("/readyz", 180_000);
  log(`serving ${manifest.id} at ${dev.url}`);

  const ids = [...Array(index.count).keys()];
  const truth = index.labels.map((l) => index.classes[l]);
  const accuracy = (got) => got.filter((answer, i) => top1(answer) === truth[i]).length / got.length;
  const agreement = (x, y) => x.filter((answer, i) => top1(answer) === top1(y[i])).length / x.length;
  const meanDistance = (x, y) => x.reduce((sum, answer, i) => sum + distance(answer, y[i]), 0) / x.length;
  const pct = (x) => `${(100 * x).toFixed(1)}%`;

  const original = await classify(
    dev.url,
    ids.map((i) => join(imagesDir, "orig", `${i}.png`)),
    "image/png",
  );
  const rows = [];
  for (const size of index.sizes) {
    const dir = join(imagesDir, String(size));
    const worker = await classify(
      dev.url,
      ids.map((i) => join(dir, `${i}.jpg`)),
      "image/jpeg",
    );
    const pil = await classify(
      dev.url,
      ids.map((i) => join(dir, `${i}-pil.png`)),
      "image/png",
    );
    const draft = await classify(
      dev.url,
      ids.map((i) => join(dir, `${i}-draft.png`)),
      "image/png",
    );
    const row = {
      size,
      worker: accuracy(worker),
      pil: accuracy(pil),
      draft: accuracy(draft),
      worker_vs_pil: agreement(worker, pil),
      draft_vs_pil: agreement(draft, pil),
      worker_tv: meanDistance(worker, pil),
      draft_tv: meanDistance(draft, pil),
    };
    rows.push(row);
    log(`  ${size} px: Worker ${pct(row.worker)}, PIL full ${pct(row.pil)}, agreement ${pct(row.worker_vs_pil)}`);
  }

  console.log(
    `model ${manifest.id}, ${index.count} Fashion-MNIST test images (the first), RGB JPEG quality 90; top-1 through the Worker's int8 engine`,
  );
  console.log(`original 28x28 PNGs: ${pct(accuracy(original))}\n`);
  console.log(
    "| JPEG size | (a) Worker decode, top-1 | (b) PIL full decode, top-1 | (c) PIL draft(), top-1 | (a) agrees with (b) | (c) agrees with (b) | (a)-(b) score distance | (c)-(b) score distance |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.size} px | ${pct(r.worker)} | ${pct(r.pil)} | ${pct(r.draft)} | ${pct(r.worker_vs_pil)} | ${pct(r.draft_vs_pil)} | ${r.worker_tv.toFixed(4)} | ${r.draft_tv.toFixed(4)} |`,
    );
  }
  console.log("\nscore distance: mean total variation distance between the two answers' scores over all classes (0: identical).");
} finally {
  await dev.stop();
  rmSync(work, { recursive: true, force: true });
}
