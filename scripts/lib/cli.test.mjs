/**
 * scripts/lib/cli.mjs, the command line every script goes through: `node --test scripts/lib/cli.test.mjs`.
 * parseCli exits the process on --help and on a usage error, so those cases run in a child Node.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { formatUsage, parseCli } from "./cli.mjs";

const spec = {
  name: "demo",
  summary: "A script that exists for the test.",
  options: {
    port: { type: "string", default: "8787", value: "N", help: "The port to listen on." },
    model: { type: "string", value: "DIR", help: "The package to serve." },
    json: { type: "boolean", default: false, help: "Print JSON." },
    verbose: { type: "boolean", short: "v", help: "Say more." },
    tag: { type: "string", multiple: true, help: "A tag, may repeat." },
  },
};

/** parseCli's result with plain objects: parseArgs returns its values without a prototype. */
const plain = ({ values, positionals }) => ({ values: { ...values }, positionals });

/** Runs parseCli(spec, argv) in a child Node; the child prints what parseCli returned, if it returns. */
function runCli(testSpec, argv, check = "") {
  const script = `
    import { parseCli, usageError } from ${JSON.stringify(new URL("./cli.mjs", import.meta.url).href)};
    const spec = ${JSON.stringify(testSpec)};
    const parsed = parseCli(spec, ${JSON.stringify(argv)});
    ${check}
    console.log(JSON.stringify(parsed));`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("parseCli", () => {
  it("--help prints every option with its sentence and default, and exits 0", () => {
    const { code, stdout, stderr } = runCli(spec, ["--help"]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trimEnd(), formatUsage(spec));
    assert.match(stdout, /^Usage: demo \[options\]$/m);
    assert.match(stdout, /--port N\s+The port to listen on\. \(default: 8787\)/);
    assert.match(stdout, /--model DIR\s+The package to serve\.$/m);
    assert.match(stdout, /--json\s+Print JSON\.$/m);
    assert.match(stdout, /-v, --verbose\s+Say more\./);
    assert.match(stdout, /--tag VALUE\s+A tag, may repeat\./);
    assert.match(stdout, /-h, --help\s+Print this help and exit\./);
    for (const name of Object.keys(spec.options)) assert.match(stdout, new RegExp(`--${name}\\b`));
  });

  it("-h is --help", () => {
    const { code, stdout } = runCli(spec, ["-h"]);
    assert.equal(code, 0);
    assert.equal(stdout.trimEnd(), formatUsage(spec));
  });

  it("an unknown flag exits 2 with the parser's message and the usage on stderr", () => {
    const { code, stdout, stderr } = runCli(spec, ["--bogus"]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(stderr, /^demo: Unknown option '--bogus'/);
    assert.ok(stderr.includes(formatUsage(spec)), stderr);
  });

  it("a string option without its value exits 2", () => {
    const { code, stderr } = runCli(spec, ["--port"]);
    assert.equal(code, 2);
    assert.match(stderr, /--port/);
    assert.ok(stderr.includes(formatUsage(spec)));
  });

  it("a positional exits 2 when the spec declares none", () => {
    const { code, stderr } = runCli(spec, ["stray"]);
    assert.equal(code, 2);
    assert.match(stderr, /stray/);
  });

  it("usageError exits 2 with the message and the usage", () => {
    const { code, stdout, stderr } = runCli(spec, ["--port", "x"], 'usageError(spec, "--port must be a port number, got x");');
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.ok(stderr.startsWith(`demo: --port must be a port number, got x\n\n${formatUsage(spec)}`), stderr);
  });

  it("parses booleans and strings, and fills in defaults", () => {
    assert.deepEqual(plain(parseCli(spec, [])), { values: { port: "8787", json: false }, positionals: [] });
    const { values } = parseCli(spec, ["--json", "--port", "9000", "--model=m", "-v", "--tag", "a", "--tag", "b"]);
    assert.deepEqual({ ...values }, { port: "9000", model: "m", json: true, verbose: true, tag: ["a", "b"] });
    assert.equal("help" in values, false);
  });

  it("returns positionals when the spec declares them, and shows them in the usage", () => {
    const withDirs = { ...spec, positionals: "[DIR ...]", examples: ["demo a b"] };
    assert.deepEqual(plain(parseCli(withDirs, ["a", "--json", "b"])), { values: { port: "8787", json: true }, positionals: ["a", "b"] });
    const usage = formatUsage(withDirs);
    assert.match(usage, /^Usage: demo \[options\] \[DIR \.\.\.\]$/m);
    assert.match(usage, /^Examples:\n {2}demo a b$/m);
  });

  it("works with no options at all", () => {
    const bare = { name: "bare", summary: "Nothing to set.", options: {}, positionals: "[DIR ...]" };
    assert.deepEqual(plain(parseCli(bare, ["x"])), { values: {}, positionals: ["x"] });
    assert.match(formatUsage(bare), /-h, --help\s+Print this help and exit\./);
  });
});
