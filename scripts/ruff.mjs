#!/usr/bin/env node
// Lint and format the repository's Python with Ruff's WebAssembly build (npm @astral-sh/ruff-wasm-nodejs),
// so no Python package index is needed. Settings: ruff.toml at the repository root.
//
// Usage (Node >= 22, from anywhere in the repository):
//   node scripts/ruff.mjs                 check: lint findings and unformatted files are listed, exit 1 if any
//   node scripts/ruff.mjs --write         format the files in place, then check the lint rules
//   node scripts/ruff.mjs --fix --write   also apply the fixes Ruff offers for lint findings, then format
//   node scripts/ruff.mjs FILE.py ...     only these files (default: every tracked *.py, `git ls-files '*.py'`)
//   node scripts/ruff.mjs --help
//
// Exit status: 0 clean, 1 findings or unformatted files, 2 bad usage or settings.
// The WebAssembly build checks text without its path, so this script chooses the files: `extend-exclude` in
// ruff.toml lists paths (relative to the repository root; a directory stands for everything under it) left out
// of the default file list. Other path-dependent settings (per-file-ignores, exclude, src) are refused.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseCli, usageError } from "./lib/cli.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const spec = {
  name: "ruff.mjs",
  summary:
    "Lint (ruff check) and format-check (ruff format --check) the repository's Python with Ruff's WebAssembly build. Settings come from ruff.toml; files default to every tracked *.py (git ls-files '*.py'). Exit status: 0 clean, 1 findings or unformatted files, 2 bad usage or settings.",
  positionals: "[FILE.py ...]",
  options: {
    check: {
      type: "boolean",
      default: false,
      help: "Report lint findings and unformatted files, change nothing (what runs without --write or --fix).",
    },
    write: { type: "boolean", default: false, help: "Format the files in place, then report the lint findings that remain." },
    fix: {
      type: "boolean",
      default: false,
      help: "Apply every fix Ruff offers for the lint findings in place (the WebAssembly build does not say which fixes Ruff deems safe: review the diff), then report what remains.",
    },
    quiet: { type: "boolean", default: false, help: "Print only problems, no summary line." },
  },
  examples: ["node scripts/ruff.mjs", "node scripts/ruff.mjs --fix --write training/tests/test_cli_help.py"],
};

/** Parse the TOML that ruff.toml uses: [tables], key = string | number | boolean | array of those. */
function parseToml(text, file = "ruff.toml") {
  const root = {};
  let table = root;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]).trim();
    if (!line) continue;
    const header = line.match(/^\[([A-Za-z0-9_.-]+)\]$/);
    if (header) {
      table = root;
      for (const key of header[1].split(".")) table = table[key] ??= {};
      continue;
    }
    const kv = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.*)$/);
    if (!kv) throw new Error(`${file}:${i + 1}: cannot read ${JSON.stringify(lines[i])}`);
    let value = kv[2];
    while (value.startsWith("[") && bracketDepth(value) > 0 && i + 1 < lines.length) {
      value += ` ${stripComment(lines[++i]).trim()}`; // a multi-line array
    }
    try {
      table[kv[1]] = JSON.parse(value.replace(/,\s*]/g, "]")); // TOML's basic strings are JSON strings
    } catch {
      throw new Error(`${file}:${i + 1}: ${kv[1]}: only strings, numbers, booleans and arrays are understood`);
    }
  }
  return root;
}

function stripComment(line) {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\\" && quoted) i++;
    else if (line[i] === '"') quoted = !quoted;
    else if (line[i] === "#" && !quoted) return line.slice(0, i);
  }
  return line;
}

function bracketDepth(text) {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\" && quoted) i++;
    else if (text[i] === '"') quoted = !quoted;
    else if (!quoted) depth += text[i] === "[" ? 1 : text[i] === "]" ? -1 : 0;
  }
  return depth;
}

/** Offset in `text` of a 1-based row and column (UTF-16 code units, as JavaScript strings count). */
function offsetOf(text, starts, { row, column }) {
  return row - 1 < starts.length ? starts[row - 1] + column - 1 : text.length;
}

function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
  return starts;
}

/** Apply the fixes' edits, skipping any that overlaps one already taken; returns [text, number applied]. */
function applyFixes(text, diagnostics) {
  const starts = lineStarts(text);
  const fixes = diagnostics
    .filter((d) => d.fix?.edits.length)
    .map((d) =>
      d.fix.edits.map((e) => ({
        from: offsetOf(text, starts, e.location),
        to: offsetOf(text, starts, e.end_location),
        content: e.content ?? "",
      })),
    );
  const taken = [];
  let applied = 0;
  for (const edits of fixes) {
    const overlaps = edits.some((e) => taken.some((t) => e.from < t.to && t.from < e.to));
    if (overlaps) continue; // the next round fixes it, against the text this round leaves
    taken.push(...edits);
    applied++;
  }
  taken.sort((a, b) => b.from - a.from);
  for (const e of taken) text = text.slice(0, e.from) + e.content + text.slice(e.to);
  return [text, applied];
}

function firstDifferentLine(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return i + 1;
}

function main(argv) {
  const { values, positionals: files } = parseCli(spec, argv);
  const flags = new Set(
    Object.keys(values)
      .filter((name) => values[name] === true)
      .map((name) => `--${name}`),
  );
  if (flags.has("--check") && (flags.has("--write") || flags.has("--fix"))) {
    usageError(spec, "--check changes nothing; it cannot be combined with --write or --fix");
  }
  let settings;
  try {
    settings = parseToml(readFileSync(path.join(ROOT, "ruff.toml"), "utf8"));
  } catch (e) {
    console.error(`ruff.mjs: ${e.message}`);
    return 2;
  }
  const pathDependent = ["exclude", "per-file-ignores", "extend-per-file-ignores", "src"];
  const refused = pathDependent.filter((k) => k in settings || k in (settings.lint ?? {}));
  if (refused.length) {
    console.error(`ruff.mjs: ruff.toml sets ${refused.join(", ")}, which the WebAssembly build cannot apply`);
    return 2;
  }
  const require = createRequire(import.meta.url);
  const { Workspace, PositionEncoding } = require("@astral-sh/ruff-wasm-nodejs");
  const excluded = (settings["extend-exclude"] ?? []).map((p) => path.normalize(p).replace(/\/$/, ""));
  delete settings["extend-exclude"];
  const workspace = new Workspace(settings, PositionEncoding.Utf16);
  const isExcluded = (file) => excluded.some((p) => file === p || file.startsWith(`${p}/`));
  const targets = files.length
    ? files.map((f) => path.relative(ROOT, path.resolve(f)))
    : execFileSync("git", ["ls-files", "-z", "*.py"], { cwd: ROOT, encoding: "utf8" })
        .split("\0")
        .filter((f) => f && !isExcluded(f));

  const problems = [];
  let changed = 0;
  for (const file of targets) {
    const original = readFileSync(path.join(ROOT, file), "utf8");
    let text = original;
    if (flags.has("--fix")) {
      for (let round = 0; round < 10; round++) {
        const [next, applied] = applyFixes(text, workspace.check(text));
        text = next;
        if (!applied) break;
      }
    }
    let formatted;
    try {
      formatted = workspace.format(text);
    } catch (e) {
      problems.push(`${file}: cannot be formatted: ${e.message ?? e}`);
      continue;
    }
    if (flags.has("--write") || flags.has("--fix")) {
      if (flags.has("--write")) text = formatted;
      if (text !== original) {
        writeFileSync(path.join(ROOT, file), text);
        changed++;
      }
    }
    if (formatted !== text) {
      problems.push(`${file}:${firstDifferentLine(text, formatted)}: not formatted (node scripts/ruff.mjs --write)`);
    }
    for (const d of workspace.check(text)) {
      const { row, column } = d.start_location;
      problems.push(`${file}:${row}:${column}: ${d.code ?? "error"} ${d.message}`);
    }
  }
  for (const p of problems) console.log(p);
  if (!flags.has("--quiet")) {
    const wrote = changed ? `, ${changed} file(s) written` : "";
    console.log(`ruff ${Workspace.version()}: ${targets.length} file(s), ${problems.length} problem(s)${wrote}`);
  }
  return problems.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
