/**
 * End to end, in a real headless Chromium: starts the Worker with `wrangler dev` on a free port and a
 * temporary persist directory, publishes a model into it with the publish script's code (--local), opens
 * the demo page, uploads a sample image through the file picker and checks the labels the page shows.
 * A second Worker on the same bucket, started alongside with API_KEYS set, checks that the page asks for a
 * key, refuses a wrong one, and classifies with the right one.
 *
 * Run: `npm run test:e2e`. Needs Debian's chromium (/usr/bin/chromium, or set CHROMIUM) and playwright-core.
 * The model: $E2E_MODEL if set, else the default package in model/, else test/fixtures/tiny-gray-package.
 * The page must always show what the API answers; a model whose manifest reports top-1 >= 0.8 must also
 * put the sample's true label (from its file name) first.
 * A photograph (samples/photos/chelsea.jpg) checks the unknown answer of a calibrated model, and the Model view
 * is clicked through: accuracy, precision and recall, the confusion heat map and a cell's thumbnails, the
 * reliability diagrams and the training curves, each against what GET /v1/models says.
 * Writes a screenshot to test-results/demo-page.png, and with the default model the two in docs/screenshots/
 * (demo-unknown.png, demo-model-view.png) that the README shows. Stops everything it started.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { findDefaultPackage } from "../../scripts/lib/model-package.mjs";
import { publishPackage } from "../../scripts/lib/publish.mjs";
import { freePort, startWranglerDev } from "../../scripts/lib/wrangler-dev.mjs";
import { openLocalBucket } from "../../scripts/lib/local-r2.mjs";
import { modelsBucketName } from "../../scripts/lib/wrangler-r2.mjs";

const root = resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT = join(root, "test-results/demo-page.png");
const DOC_SCREENSHOTS = join(root, "docs/screenshots");
const PHOTO = join(root, "samples/photos/chelsea.jpg");

/** "Ankle boot", "ankle-boot", "T-shirt/top" -> comparable keys. */
const key = (text) => text.toLowerCase().replace(/[^a-z0-9]/g, "");

/** A model that scores well on its test set must get the sample right; a random-weight fixture need not. */
const MIN_TOP1_FOR_TRUE_LABEL = 0.8;

function chooseModel() {
  let dir;
  if (process.env.E2E_MODEL) dir = resolve(process.env.E2E_MODEL);
  else {
    try {
      dir = findDefaultPackage(join(root, "model"));
    } catch {
      dir = join(root, "test/fixtures/tiny-gray-package");
    }
  }
  const metrics = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")).metrics ?? {};
  return { dir, trained: Number(metrics.top1_int8 ?? metrics.top1_fp32 ?? 0) >= MIN_TOP1_FOR_TRUE_LABEL };
}

const log = (line) => console.log(line);
let work;
let dev;
let keyed;
let browser;
/** The key the second Worker wants. */
const KEY = "e2e-key-7f3a9c01d2";
const model = chooseModel();

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A page's timing line shows real phases (never 0 ms) or says there are none (a deployed Worker's clock). */
function assertHonestTiming(timing) {
  assert.match(
    timing,
    /^Server: (timing not available|((decode|preprocess|inference) [\d.]+ ms)( · (decode|preprocess|inference) [\d.]+ ms)*) · round trip \d+ ms/,
  );
  for (const [, ms] of timing.matchAll(/(?:decode|preprocess|inference) ([\d.]+) ms/g))
    assert.ok(Number(ms) > 0, `a phase shown as ${ms} ms: ${timing}`);
}

// On a timeout node --test ends this file's process without running after(): stop the Workers' process
// groups then too, or they outlive the test (wrangler dev runs detached).
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    for (const worker of [dev, keyed]) {
      try {
        if (worker) process.kill(-worker.child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    process.exit(1);
  });
}

describe("the demo page in headless Chromium", () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
    work = mkdtempSync(join(tmpdir(), "alexnet-edge-e2e-"));
    const persistTo = join(work, "state");
    mkdirSync(persistTo);
    const [port, inspectorPort, keyedPort, keyedInspectorPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    log(`model ${model.dir}${model.trained ? "" : " (untrained: only checked against the API's answer)"}`);
    // wrangler dev starts while the package is published into the same persist directory, as npm start
    // does. The Worker re-reads the pointer on every request (POINTER_CHECK_SECONDS=0).
    // API_KEYS empty: open, whatever a developer's .dev.vars holds. The keyed Worker starts at the same
    // time, so it costs no extra wait.
    dev = startWranglerDev({
      cwd: root,
      port,
      persistTo,
      inspectorPort,
      stdio: "pipe",
      vars: { POINTER_CHECK_SECONDS: "0", API_KEYS: "" },
    });
    keyed = startWranglerDev({
      cwd: root,
      port: keyedPort,
      persistTo,
      inspectorPort: keyedInspectorPort,
      stdio: "pipe",
      vars: { POINTER_CHECK_SECONDS: "0", API_KEYS: KEY },
    });
    const bucket = openLocalBucket({ bucket: modelsBucketName(join(root, "wrangler.toml")), persistTo });
    try {
      await publishPackage(bucket, model.dir, { log });
    } finally {
      await bucket.close();
    }
    await Promise.all([dev.waitFor("/readyz", 90_000), keyed.waitFor("/readyz", 90_000)]);
    log(`Workers ready at ${dev.url} (open) and ${keyed.url} (API_KEYS set)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await Promise.all([dev?.stop(), keyed?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("shows the top-5 labels, the server's timing and the model for an uploaded sample", async () => {
    const [samples, info] = await Promise.all([
      fetch(`${dev.url}/samples/index.json`).then((r) => r.json()),
      fetch(`${dev.url}/v1/models`).then((r) => r.json()),
    ]);
    assert.ok(samples.length > 0, "the page offers no samples (npm run build:samples)");
    const labelKeys = new Map(info.labels.map((label) => [key(label), label]));
    const sample = samples.find((s) => labelKeys.has(key(s.title))) ?? samples[0];
    const trueLabel = labelKeys.get(key(sample.title));

    const bytes = new Uint8Array(await (await fetch(`${dev.url}/samples/${encodeURIComponent(sample.name)}`)).arrayBuffer());
    const file = join(work, sample.name);
    writeFileSync(file, bytes);
    const api = await (
      await fetch(`${dev.url}/v1/classify`, { method: "POST", headers: { "content-type": sample.type }, body: bytes })
    ).json();

    const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${dev.url}/`);
    await page.locator("#model").filter({ hasText: info.id }).waitFor({ timeout: 15_000 });
    await page.setInputFiles("#file", file);
    await page.locator("#result:not([hidden])").waitFor({ timeout: 30_000 });

    const labels = await page.locator("#predictions .label").allTextContents();
    const scores = await page.locator("#predictions .score").allTextContents();
    const timing = await page.locator("#timing").textContent();
    log(`${sample.name}: page shows ${labels.map((l, i) => `${l} ${scores[i]}`).join(", ")}; ${timing}`);

    assert.equal(labels.length, Math.min(5, info.labels.length));
    assert.deepEqual(
      labels,
      api.predictions.map((p) => p.label),
    );
    if (model.trained && trueLabel) assert.equal(labels[0], trueLabel, `the default model should recognise ${sample.name}`);
    assertHonestTiming(timing);
    assert.match(timing, new RegExp(`model ${info.id.replace(/[.]/g, "\\.")}`));
    assert.deepEqual(errors, []);

    // A sample button does the same without a file.
    await page.locator("#samples button").last().click();
    await page
      .locator("#status")
      .filter({ hasText: samples.at(-1).title })
      .waitFor({ timeout: 30_000 });

    await page.locator("#samples button").first().click();
    await page.locator("#status").filter({ hasText: samples[0].title }).waitFor({ timeout: 30_000 });
    mkdirSync(join(root, "test-results"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    log(`screenshot: ${SCREENSHOT}`);
  });

  it("says plainly that a photograph is none of the model's labels, and shows its report card in the Model view", async () => {
    const info = await (await fetch(`${dev.url}/v1/models`)).json();
    const api = await (
      await fetch(`${dev.url}/v1/classify`, { method: "POST", headers: { "content-type": "image/jpeg" }, body: readFileSync(PHOTO) })
    ).json();
    const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${dev.url}/`);
    await page.locator("#model").filter({ hasText: info.id }).waitFor({ timeout: 15_000 });
    await page.setInputFiles("#file", PHOTO);
    await page.locator("#result:not([hidden])").waitFor({ timeout: 30_000 });
    assert.deepEqual(
      await page.locator("#predictions .label").allTextContents(),
      api.predictions.map((p) => p.label),
    );
    const shown = await page.locator("#unknown").isVisible();
    assert.equal(shown, api.unknown, "the page says unknown exactly when the API does");
    assert.equal(await page.locator("#result.unknown").count(), api.unknown ? 1 : 0, "the guesses are greyed only when unknown");
    if (info.calibration && model.trained) assert.equal(api.unknown, true, "the default model should call a cat photo unknown");
    if (api.unknown) {
      const text = await page.locator("#unknown").textContent();
      assert.match(text, new RegExp(`not one of the ${info.labels.length} things this model knows`));
      assert.match(await page.locator("#status").textContent(), /not one of the/);
      log(`chelsea.jpg: ${text}`);
    }
    const forDocs = model.trained && info.report;
    if (forDocs) {
      mkdirSync(DOC_SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(DOC_SCREENSHOTS, "demo-unknown.png"), fullPage: true });
    }

    await page.click("#tab-model");
    await page.locator("#view-model:not([hidden])").waitFor({ timeout: 5_000 });
    assert.equal(await page.locator("#view-classify").isVisible(), false);
    const { report } = info;
    if (!report) {
      assert.match(await page.locator("#model-empty").textContent(), /no report card/);
      assert.deepEqual(errors, []);
      return;
    }
    const pct = (v) => `${(v * 100).toFixed(1)}%`;
    assert.match(
      await page.locator("#accuracy").textContent(),
      new RegExp(`^${pct(report.accuracy).replace(".", "\\.")} of ${report.count} test images`),
    );
    const rows = await page
      .locator("#per-class tr")
      .evaluateAll((trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.deepEqual(
      rows,
      report.per_class.map((r) => [r.label, pct(r.precision), pct(r.recall), String(r.support)]),
    );
    const n = info.labels.length;
    const cells = page.locator("#confusion td.cell button");
    assert.equal(await cells.count(), n * n);
    assert.deepEqual((await cells.allTextContents()).map(Number), report.confusion.flat());
    // The largest mistake: its cell shows the test images behind it, cut from the package's sprite.
    let worst = [0, 1];
    for (let t = 0; t < n; t++)
      for (let p = 0; p < n; p++) if (t !== p && report.confusion[t][p] > report.confusion[worst[0]][worst[1]]) worst = [t, p];
    const [t, p] = worst;
    await page.locator(`#confusion button[data-true="${t}"][data-predicted="${p}"]`).click();
    const want = report.thumbnails.cells[t][p].length;
    assert.ok(want > 0);
    await page
      .locator("#cell-thumbs .thumb")
      .nth(want - 1)
      .waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("#cell-thumbs .thumb").count(), want);
    assert.match(
      await page.locator("#cell-caption").textContent(),
      new RegExp(`True ${info.labels[t]}, answered ${info.labels[p]}: ${report.confusion[t][p]} test images`),
    );
    assert.match(
      await page
        .locator("#cell-thumbs .thumb")
        .first()
        .evaluate((el) => getComputedStyle(el).backgroundImage),
      /^url\("blob:/,
    );
    assert.equal(await page.locator(`#confusion button[aria-pressed="true"]`).count(), 1);

    const figures = page.locator("#reliability figure");
    assert.equal(await figures.count(), report.reliability.after ? 2 : 1);
    assert.match(await figures.first().textContent(), new RegExp(`ECE ${pct(report.ece.before).replace(".", "\\.")}`));
    assert.equal(await figures.first().locator("rect.bar").count(), report.reliability.before.filter((b) => b.count > 0).length);
    if (report.reliability.after)
      assert.match(await figures.nth(1).textContent(), new RegExp(`ECE ${pct(report.ece.after).replace(".", "\\.")}`));
    assert.equal(await page.locator("#curves figure").count(), 2);
    assert.ok((await page.locator("#curves polyline.line").count()) >= 4, "train and test lines for loss and top-1");
    const oodRows = await page.locator("#ood tr").count();
    assert.equal(oodRows, 2 + Object.keys(report.ood?.sets ?? {}).length);
    assert.deepEqual(errors, []);
    if (forDocs) await page.screenshot({ path: join(DOC_SCREENSHOTS, "demo-model-view.png"), fullPage: true });
    log(`Model view: ${rows.length} labels, confusion ${n}x${n}, cell ${info.labels[t]} -> ${info.labels[p]} showed ${want} thumbnails`);
  });

  it("asks for a key, refuses a wrong one, and classifies with the right one", async () => {
    assert.equal((await fetch(`${keyed.url}/v1/models`)).status, 401);
    const info = await (await fetch(`${keyed.url}/v1/models`, { headers: { Authorization: `Bearer ${KEY}` } })).json();
    const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${keyed.url}/`);
    await page.locator("#key:not([hidden])").waitFor({ timeout: 15_000 });

    await page.fill("#key-input", "not-the-key");
    await page.click("#key button");
    await page.locator("#status").filter({ hasText: "not accepted" }).waitFor({ timeout: 15_000 });

    await page.fill("#key-input", KEY);
    await page.click("#key button");
    await page.locator("#model").filter({ hasText: info.id }).waitFor({ timeout: 15_000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("alexnet-edge.api-key")), KEY);

    await page.locator("#samples button").first().click();
    await page.locator("#result:not([hidden])").waitFor({ timeout: 30_000 });
    assert.equal((await page.locator("#predictions .label").allTextContents()).length, Math.min(5, info.labels.length));
    assertHonestTiming(await page.locator("#timing").textContent());
    assert.deepEqual(errors, []);
    log(`with API_KEYS: the page asked for a key and classified with it`);
  });
});
