/**
 * The streamed forms' benchmark images (bench/make_stream_inputs.py, written once into bench/.inputs) at the
 * streaming pipeline's limits: bench:memory and bench:upload read the same files.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { MAX_JPEG_PIXELS, MAX_PNG_PIXELS, MAX_PROGRESSIVE_JPEG_PIXELS, MAX_STREAMED_IMAGE_BYTES } from "../src/config.ts";
import { MAX_JPEG_SCANS } from "../src/image/jpeg-markers.ts";
import { MAX_IDAT_CHUNKS } from "../src/image/png-chunks.ts";

/** Writes the images into `inputsDir` unless there already; python's output goes to `stdout` (stderr for --json runs). */
export function ensureStreamInputs(root, inputsDir, log, stdout = "inherit") {
  if (existsSync(join(inputsDir, "bomb-idat.png"))) return; // the last one written
  log("generating the streamed-input images into bench/.inputs (once, ~15 s) ...");
  const args = ["bench/make_stream_inputs.py", inputsDir];
  args.push("--baseline-pixels", String(MAX_JPEG_PIXELS), "--progressive-pixels", String(MAX_PROGRESSIVE_JPEG_PIXELS));
  args.push("--png-pixels", String(MAX_PNG_PIXELS), "--streamed-bytes", String(MAX_STREAMED_IMAGE_BYTES));
  args.push("--max-scans", String(MAX_JPEG_SCANS), "--max-idat", String(MAX_IDAT_CHUNKS));
  execFileSync("sh", ["scripts/python.sh", ...args], { cwd: root, stdio: ["ignore", stdout, "inherit"] });
}
