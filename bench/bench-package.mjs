/**
 * The benchmarks' model: the full paper-layout AlexNet-224 with 1000 classes and random weights, written once
 * into bench/.packages by scripts/make_bench_package.py (~60 MB, never committed), and a local R2 bucket
 * seeded with it for `wrangler dev`.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { publishPackage } from "../scripts/lib/publish.mjs";
import { modelsBucketName, openBucket } from "../scripts/lib/wrangler-r2.mjs";

/** The package directory, generated first if missing (~40 s of PyTorch). */
export function ensureBenchPackage(root, log = console.log) {
  const packageDir = join(root, "bench/.packages/alexnet-random-224");
  if (!existsSync(join(packageDir, "manifest.json"))) {
    log("generating the random 224x224 AlexNet package (~60 MB, once) ...");
    execFileSync("sh", ["scripts/python.sh", "scripts/make_bench_package.py", "--no-onnx", packageDir], {
      cwd: root,
      stdio: ["ignore", process.stderr, "inherit"],
    });
  }
  return packageDir;
}

/**
 * Publishes `packageDir` into the local bucket of `configPath` persisted in `persistTo` and points the model
 * pointer at it; files already there are skipped. Resolves to `{ id }`.
 */
export function seedLocalBucket(root, persistTo, packageDir, configPath = join(root, "wrangler.toml")) {
  const bucket = openBucket({ bucket: modelsBucketName(configPath), mode: "local", persistTo, cwd: root, log: () => {} });
  return publishPackage(bucket, packageDir, { log: () => {} });
}
