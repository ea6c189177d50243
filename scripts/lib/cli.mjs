/**
 * The command line of every script: options declared once, each with a sentence of help and its default.
 * `--help` prints the usage built from them (exit 0); an unknown flag or a bad value prints the parser's
 * message and the usage (exit 2), the convention of POSIX utilities for a usage error.
 */
import { parseArgs } from "node:util";

/**
 * @typedef {object} CliOption
 * @property {"string" | "boolean"} type
 * @property {string} help one sentence: what the option does
 * @property {string | boolean} [default]
 * @property {string} [short] one letter
 * @property {string} [value] the placeholder shown after a string option (default VALUE)
 * @property {boolean} [multiple]
 */

/**
 * @param {{ name: string, summary: string, options: Record<string, CliOption>, positionals?: string, examples?: string[] }} spec
 * @param {string[]} [argv]
 * @returns {{ values: Record<string, any>, positionals: string[] }}
 */
export function parseCli(spec, argv = process.argv.slice(2)) {
  const usage = formatUsage(spec);
  const options = { help: { type: "boolean", short: "h", default: false } };
  for (const [name, option] of Object.entries(spec.options)) {
    options[name] = { type: option.type };
    if (option.short) options[name].short = option.short;
    if (option.multiple) options[name].multiple = true;
    if (option.default !== undefined) options[name].default = option.default;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: spec.positionals !== undefined });
  } catch (error) {
    console.error(`${spec.name}: ${error.message}\n\n${usage}`);
    process.exit(2);
  }
  if (parsed.values.help) {
    console.log(usage);
    process.exit(0);
  }
  delete parsed.values.help;
  return { values: parsed.values, positionals: parsed.positionals };
}

/** Exits 2 with the usage: for checks the parser cannot make (a missing or malformed value). */
export function usageError(spec, message) {
  console.error(`${spec.name}: ${message}\n\n${formatUsage(spec)}`);
  process.exit(2);
}

export function formatUsage(spec) {
  const lines = [`Usage: ${spec.name} [options]${spec.positionals ? ` ${spec.positionals}` : ""}`, "", spec.summary, "", "Options:"];
  const rows = Object.entries(spec.options).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : "    "}--${name}${option.type === "string" ? ` ${option.value ?? "VALUE"}` : ""}`;
    const fallback = option.default === undefined || option.default === false ? "" : ` (default: ${option.default})`;
    return [flag, `${option.help}${fallback}`];
  });
  rows.push(["-h, --help", "Print this help and exit."]);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  for (const [flag, help] of rows) lines.push(`  ${flag.padEnd(width)}${help}`);
  if (spec.examples?.length) lines.push("", "Examples:", ...spec.examples.map((example) => `  ${example}`));
  return lines.join("\n");
}
