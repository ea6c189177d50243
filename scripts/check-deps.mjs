#!/usr/bin/env node
/**
 * Fails on an import cycle between files of src/, or on an import against the layering in src/layers.json
 * (an engine file importing the HTTP layer, say). Type-only imports count: a cycle of types still ties files
 * together. Imports are read with TypeScript's own pre-processor, so comments and strings do not fool it.
 *
 * Usage: npm run check:deps [-- --graph] [--src DIR]
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { parseCli } from "./lib/cli.mjs";

const spec = {
  name: "check-deps",
  summary: "Checks that src/ has no import cycle and no import against the layering in src/layers.json.",
  options: {
    src: { type: "string", default: "src", value: "DIR", help: "The source tree to check, holding its layers.json." },
    graph: { type: "boolean", default: false, help: "Also print every module-to-module arrow with its count." },
  },
};
const { values } = parseCli(spec);

const root = resolve(import.meta.dirname, "..");
const src = resolve(root, values.src);
const rules = JSON.parse(readFileSync(join(src, "layers.json"), "utf8"));

/** Every .ts file under src/, as a path relative to src/. Tests beside modules are left out: they may reach anywhere. */
function sourceFiles(dir = src) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [relative(src, path)] : [];
  });
}

/** The src/ file an import specifier names, or undefined for packages and non-TypeScript files (wasm, html). */
function resolveImport(from, specifier, known) {
  if (!specifier.startsWith(".")) return undefined;
  const base = relative(src, resolve(src, dirname(from), specifier));
  for (const candidate of [base, `${base}.ts`, join(base, "index.ts")]) if (known.has(candidate)) return candidate;
  return undefined;
}

const moduleOf = (file) => (file.includes("/") ? file.slice(0, file.indexOf("/")) : file.replace(/\.ts$/, ""));

const files = sourceFiles().sort();
const known = new Set(files);
const edges = new Map(files.map((file) => [file, []]));
const problems = [];
for (const file of files) {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(src, file), "utf8"), true, true);
  for (const { fileName } of importedFiles) {
    const target = resolveImport(file, fileName, known);
    if (fileName.startsWith(".") && !target && /\.ts$|^[^.]*$/.test(fileName.split("/").pop() ?? "")) {
      if (!resolve(src, dirname(file), fileName).startsWith(src)) continue; // the built kernels, outside src/
      problems.push(`${file}: imports ${fileName}, which is no file under src/`);
    }
    if (target) edges.get(file).push(target);
  }
}

// Layering: each arrow between modules must be one the importing module declares.
const arrows = new Map();
for (const [file, targets] of edges) {
  const from = moduleOf(file);
  const rule = rules.modules[from];
  if (!rule) problems.push(`${file}: its module "${from}" is not in src/layers.json`);
  for (const target of targets) {
    const to = moduleOf(target);
    if (to === from) continue;
    arrows.set(`${from} -> ${to}`, (arrows.get(`${from} -> ${to}`) ?? 0) + 1);
    if (rule && !rule.may_import.includes(to))
      problems.push(`${file} imports ${target}: "${from}" may not import "${to}" (src/layers.json)`);
  }
}
for (const [file, importers] of Object.entries(rules.entry_only ?? {})) {
  if (file === "$comment") continue;
  for (const [from, targets] of edges) {
    if (targets.includes(file) && !importers.includes(from))
      problems.push(`${from} imports ${file}, which only ${importers.join(", ")} may import`);
  }
}

// Cycles: strongly connected components of more than one file (Tarjan's algorithm), or a file importing itself.
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
let counter = 0;
function connect(file) {
  index.set(file, counter);
  low.set(file, counter++);
  stack.push(file);
  onStack.add(file);
  for (const target of edges.get(file)) {
    if (!index.has(target)) {
      connect(target);
      low.set(file, Math.min(low.get(file), low.get(target)));
    } else if (onStack.has(target)) {
      low.set(file, Math.min(low.get(file), index.get(target)));
    }
  }
  if (low.get(file) !== index.get(file)) return;
  const component = [];
  let member;
  do {
    member = stack.pop();
    onStack.delete(member);
    component.push(member);
  } while (member !== file);
  if (component.length > 1 || edges.get(file).includes(file)) problems.push(`import cycle: ${component.sort().join(" <-> ")}`);
}
for (const file of files) if (!index.has(file)) connect(file);

if (values.graph) for (const [arrow, count] of [...arrows].sort()) console.log(`${arrow}  (${count})`);
const count = [...edges.values()].reduce((sum, targets) => sum + targets.length, 0);
if (problems.length > 0) {
  for (const problem of problems) console.error(`check-deps: ${problem}`);
  console.error(`check-deps: ${problems.length} problem(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`check-deps: ${files.length} files, ${count} imports, 0 cycles, 0 imports against src/layers.json`);
