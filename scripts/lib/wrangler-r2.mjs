/**
 * The model bucket, reached through the wrangler CLI (`wrangler r2 object get/put/delete`). The local and
 * the remote bucket take the same calls; only the flag differs (`--local --persist-to DIR` or `--remote`).
 * Each call starts wrangler (3-5 s), so callers batch their questions into few calls.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { LARGE_BYTES, formatBytes, progressReporter } from "./progress.mjs";

/** Terminal colour codes (ESC [ ... m), which wrangler writes even into a pipe. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

const require = createRequire(import.meta.url);
const WRANGLER_BIN = join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");

/** A wrangler call failed; the message carries wrangler's own explanation. */
export class WranglerError extends Error {
  name = "WranglerError";
}

/** wrangler's message for a missing object (its exit status alone does not tell "missing" from "failed"). */
const NOT_FOUND = /specified key does not exist|NoSuchKey|object not found/i;

/** The bucket bound as MODELS in wrangler.toml: the one place the bucket name is written. */
export function modelsBucketName(wranglerToml) {
  const text = readFileSync(wranglerToml, "utf8");
  for (const block of text.split(/^\s*\[\[r2_buckets\]\]\s*$/m).slice(1)) {
    const body = block.split(/^\s*\[/m)[0];
    if (/^\s*binding\s*=\s*"MODELS"/m.test(body)) {
      const name = body.match(/^\s*bucket_name\s*=\s*"([^"]+)"/m);
      if (name) return name[1];
    }
  }
  throw new Error(`${wranglerToml} binds no R2 bucket as MODELS`);
}

/**
 * @param {{ bucket: string, mode: "local" | "remote", persistTo?: string, cwd?: string, log?: (line: string) => void }} options
 */
export function openBucket({ bucket, mode, persistTo, cwd = process.cwd(), log = console.log }) {
  if (mode !== "local" && mode !== "remote") throw new Error(`mode must be "local" or "remote", got ${mode}`);
  if (mode === "local" && !persistTo) throw new Error("a local bucket needs persistTo (the directory wrangler dev persists to)");
  const where = mode === "local" ? ["--local", "--persist-to", persistTo] : ["--remote"];
  const objectPath = (key) => `${bucket}/${key}`;

  /** Runs `wrangler r2 object <args>`; `onStdout` sees the object's bytes for `get --pipe`. */
  function wrangler(args, { stdin, onStdout } = {}) {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [WRANGLER_BIN, "r2", "object", ...args, ...where], {
        cwd,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" },
        stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"],
      });
      let stderr = "";
      let stdout = "";
      child.stdout.on("data", (chunk) => {
        if (onStdout) onStdout(chunk);
        else stdout += chunk;
      });
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
      if (stdin) stdin(child.stdin);
    });
  }

  /** wrangler's own explanation (not logged in, no such bucket...), without colours, blank lines or its log path. */
  const failure = (what, result) => {
    const lines = (result.stderr || result.stdout)
      .replace(ANSI_COLOUR, "")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("🪵"));
    return new WranglerError(`wrangler r2 object ${what} failed (exit ${result.code}):\n  ${lines.slice(-8).join("\n  ")}`);
  };

  /** The object's bytes, or null when there is no such object. For small objects (manifests, pointers). */
  async function get(key) {
    const chunks = [];
    const result = await wrangler(["get", objectPath(key), "--pipe"], { onStdout: (c) => chunks.push(c) });
    if (result.code !== 0) {
      if (NOT_FOUND.test(result.stderr)) return null;
      throw failure(`get ${objectPath(key)}`, result);
    }
    return Buffer.concat(chunks);
  }

  /** Reads the object back and hashes it as it streams: `{ bytes, sha256 }`, or null when it is missing. */
  async function digest(key, expectedBytes) {
    const hash = createHash("sha256");
    let bytes = 0;
    const progress = progressReporter(`  ${key}: reading back`, expectedBytes, log);
    const result = await wrangler(["get", objectPath(key), "--pipe"], {
      onStdout: (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
        progress(bytes);
      },
    });
    if (result.code !== 0) {
      if (NOT_FOUND.test(result.stderr)) return null;
      throw failure(`get ${objectPath(key)}`, result);
    }
    return { bytes, sha256: hash.digest("hex") };
  }

  /** Uploads a file or a buffer; the bytes go through wrangler's stdin so that large files show progress. */
  async function put(key, { file, data, contentType }) {
    let ticker;
    const result = await wrangler(["put", objectPath(key), "--pipe", "--content-type", contentType], {
      stdin: (sink) => {
        // wrangler may exit before reading everything (bad credentials, say): its exit status reports that.
        sink.on("error", () => {});
        if (data) return sink.end(data);
        const source = createReadStream(file);
        let sent = 0;
        const size = statSync(file).size;
        const progress = progressReporter(`  ${key}: passing to wrangler`, size, log);
        source.on("data", (chunk) => {
          sent += chunk.length;
          progress(sent);
        });
        source.on("end", () => {
          if (size < LARGE_BYTES) return;
          // wrangler reads all of stdin before it sends anything: from here on only the time can be shown.
          const started = Date.now();
          log(`  ${key}: ${formatBytes(size)} handed to wrangler, which uploads it now`);
          ticker = setInterval(() => log(`  ${key}: still uploading, ${Math.round((Date.now() - started) / 1000)} s`), 5000);
        });
        source.pipe(sink);
      },
    });
    clearInterval(ticker);
    if (result.code !== 0) throw failure(`put ${objectPath(key)}`, result);
  }

  async function remove(key) {
    const result = await wrangler(["delete", objectPath(key)]);
    if (result.code !== 0 && !NOT_FOUND.test(result.stderr)) throw failure(`delete ${objectPath(key)}`, result);
  }

  return {
    mode,
    bucket,
    persistTo,
    describe: mode === "local" ? `local bucket ${bucket} in ${persistTo}` : `remote bucket ${bucket}`,
    get,
    digest,
    put,
    remove,
  };
}
