/**
 * Runs `wrangler dev` in its own process group, so that stopping it stops the workerd it starts too
 * (killing wrangler alone leaves workerd running: docs/platform-notes.md, "Node, wrangler and the local runtime").
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const WRANGLER_DIR = dirname(require.resolve("wrangler/package.json"));
const WRANGLER_BIN = join(WRANGLER_DIR, "bin", "wrangler.js");

/** The workerd version wrangler runs: a persist directory written by a newer one crashes an older one. */
export function workerdVersion() {
  return createRequire(join(WRANGLER_DIR, "package.json"))("workerd/package.json").version;
}

/** Resolves to `port` if nothing listens on it at `host`, else rejects with a clear message. */
export function assertPortFree(port, host) {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", () =>
      reject(new Error(`port ${port} on ${host} is in use (another \`npm start\` or \`wrangler dev\`?); stop it or pass --port`)),
    );
    server.listen(port, host, () => server.close(() => resolvePort(port)));
  });
}

/** A port the OS says is free now. */
export function freePort(host = "127.0.0.1") {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Writes `cwd`'s wrangler.toml without its `[[ratelimits]]` tables beside it (same directory, so every relative
 * path in it still holds), as `.wrangler.unlimited.toml` (git-ignored); returns its path.
 */
function withoutRateLimits(cwd) {
  const source = readFileSync(join(cwd, "wrangler.toml"), "utf8");
  // A [[ratelimits]] table and its [ratelimits.*] subtables run until the next table of another name.
  const kept = source.replace(/^\[\[ratelimits\]\][\s\S]*?(?=^\[(?!\[?ratelimits)|(?![\s\S]))/gm, "");
  const path = join(cwd, ".wrangler.unlimited.toml");
  writeFileSync(path, `# Written by scripts/lib/wrangler-dev.mjs for benchmarks: wrangler.toml without [[ratelimits]].\n${kept}`);
  return path;
}

/**
 * @param {{ cwd: string, port: number, ip?: string, persistTo: string, inspectorPort?: number, stdio?: "inherit" | "pipe", vars?: Record<string, string>, config?: string, unlimited?: boolean, drainBodies?: boolean }} options
 *   `config`: a wrangler.toml other than the one in `cwd` (a benchmark's own Worker entry).
 *   `unlimited`: the Worker without its RATE_LIMITER binding (the middleware then lets every request through),
 *   for benchmarks whose thousands of loopback requests all count as one client.
 *   `drainBodies: false`: without the middleware wrangler dev adds to the Worker (and deployed Workers do not
 *   have) that reads every body the Worker left unread into one ArrayBuffer in the isolate
 *   (WRANGLER_DISABLE_REQUEST_BODY_DRAINING): with it, a refused 95 MB upload costs the isolate tens of MB and
 *   memory measurements would count a dev-only cost.
 */
export function startWranglerDev({
  cwd,
  port,
  ip = "127.0.0.1",
  persistTo,
  inspectorPort,
  stdio = "inherit",
  vars = {},
  config,
  unlimited = false,
  drainBodies = true,
}) {
  const args = [WRANGLER_BIN, "dev", "--port", String(port), "--ip", ip, "--persist-to", persistTo, "--show-interactive-dev-session=false"];
  if (unlimited && !config) config = withoutRateLimits(cwd);
  if (config) args.push("--config", config);
  if (inspectorPort) args.push("--inspector-port", String(inspectorPort));
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  // stdin is not inherited: a background process group that reads the terminal would be stopped (SIGTTIN).
  const child = spawn(process.execPath, args, {
    cwd,
    detached: true,
    stdio: ["ignore", stdio, stdio],
    // CLOUDFLARE_CF_FETCH_ENABLED=false: Miniflare would fetch a sample `Request.cf` object from
    // workers.cloudflare.com at start, and offline print a warning with a stack trace twice. The Worker never
    // reads request.cf, so the built-in placeholder serves as well; a value the user set wins.
    env: {
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      ...(drainBodies ? {} : { WRANGLER_DISABLE_REQUEST_BODY_DRAINING: "true" }),
    },
  });
  const exited = new Promise((resolveExit) => child.on("exit", (code, signal) => resolveExit({ code, signal })));
  let output = "";
  if (stdio === "pipe") {
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
  }
  const url = `http://${ip}:${port}`;

  /** Polls `path` until it answers 200; rejects if wrangler exits first or `timeoutMs` passes. */
  async function waitFor(path, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let exit;
    exited.then((e) => (exit = e));
    let last = "no answer";
    while (Date.now() < deadline) {
      if (exit)
        throw new Error(
          `wrangler dev exited (${exit.signal ?? `code ${exit.code}`}) before ${path} answered${output ? `:\n${output.slice(-2000)}` : ""}`,
        );
      try {
        const response = await fetch(url + path, { signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now())) });
        if (response.ok) return response;
        last = `${response.status} ${await response.text()}`;
      } catch (error) {
        last = error.message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(
      `${url}${path} did not answer 200 within ${timeoutMs / 1000} s (last: ${last})${output ? `\n${output.slice(-2000)}` : ""}`,
    );
  }

  /** Stops the whole process group: SIGTERM, then SIGKILL after `graceMs`. */
  async function stop(graceMs = 5000) {
    const signalGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // The group is gone already.
      }
    };
    signalGroup("SIGTERM");
    const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
    // workerd may outlive wrangler by a moment; the group id still reaches it.
    signalGroup("SIGKILL");
  }

  return { child, url, exited, waitFor, stop, output: () => output };
}
