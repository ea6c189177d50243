/** scripts/check-deps.mjs on small trees written for each case: it passes a clean tree and names each fault. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";

const script = join(import.meta.dirname, "check-deps.mjs");
const layers = {
  modules: {
    config: { may_import: [] },
    engine: { may_import: ["config"] },
    http: { may_import: ["config", "engine"] },
    index: { may_import: ["http"] },
  },
  entry_only: { "http/app.ts": ["index.ts"] },
};

function check(files) {
  const dir = mkdtempSync(join(tmpdir(), "check-deps-"));
  try {
    writeFileSync(join(dir, "layers.json"), JSON.stringify(layers));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    const run = spawnSync(process.execPath, [script, "--src", dir], { encoding: "utf8" });
    return { status: run.status, output: run.stdout + run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const clean = {
  "config.ts": "export const N = 1;\n",
  "engine/run.ts": 'import { N } from "../config";\nexport const run = () => N;\n',
  "http/app.ts": 'import { run } from "../engine/run";\nimport { route } from "./route";\nexport const app = [run, route];\n',
  "http/route.ts": "export const route = 1;\n",
  "index.ts": 'import { app } from "./http/app";\nexport default app;\n',
};

test("passes a tree whose imports follow its layers", () => {
  const { status, output } = check(clean);
  assert.equal(status, 0, output);
  assert.match(output, /5 files, 4 imports, 0 cycles/);
});

test("fails on an import up the layers, naming the file and the rule", () => {
  const { status, output } = check({
    ...clean,
    "engine/run.ts": 'import { route } from "../http/route";\nexport const run = () => route;\n',
  });
  assert.equal(status, 1);
  assert.match(output, /engine\/run\.ts imports http\/route\.ts: "engine" may not import "http"/);
});

test("fails on a cycle of type-only imports inside one module", () => {
  const { status, output } = check({
    ...clean,
    "http/route.ts": 'import type { Env } from "./env";\nexport const route = 1 as unknown as Env;\n',
    "http/env.ts": 'import type { route } from "./route";\nexport type Env = typeof route;\n',
  });
  assert.equal(status, 1);
  assert.match(output, /import cycle: http\/env\.ts <-> http\/route\.ts/);
});

test("fails when a route imports the app that wires it", () => {
  const { status, output } = check({
    ...clean,
    "http/route.ts": 'import type { app } from "./app";\nexport const route = 1 as unknown as typeof app;\n',
  });
  assert.equal(status, 1);
  assert.match(output, /http\/route\.ts imports http\/app\.ts, which only index\.ts may import/);
  assert.match(output, /import cycle: http\/app\.ts <-> http\/route\.ts/);
});

test("fails on a module that layers.json does not name", () => {
  const { status, output } = check({ ...clean, "extra/x.ts": "export const x = 1;\n" });
  assert.equal(status, 1);
  assert.match(output, /its module "extra" is not in src\/layers\.json/);
});

test("exits 2 with the usage on an unknown flag", () => {
  const run = spawnSync(process.execPath, [script, "--nope"], { encoding: "utf8" });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /Unknown option '--nope'[\s\S]*Usage: check-deps/);
});
