/**
 * GET /v1/models carries the served package's calibration and its report card (report.json from the local R2,
 * bounded, checked and charged to the memory ledger), and GET /v1/models/{id}/thumbnails.png streams its sprite.
 * The report is the default model's own (model/alexnet-fmnist-64-v8/report.json) on a tiny package.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_REPORT_BYTES, REPORT_MEMORY_FACTOR } from "../../src/config";
import { createApp } from "../../src/http/app";
import { createMemoryBudget, type MemoryBudget } from "../../src/memory/budget";
import { createModelHolder } from "../../src/model/served-model";
import type { Manifest } from "../../src/package/manifest";
import defaultManifest from "../../model/alexnet-fmnist-64-v8/manifest.json";
import defaultReport from "../../model/alexnet-fmnist-64-v8/report.json";
import { encodePng } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

const encoder = new TextEncoder();

async function sha256(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A ledger that records what is asked of it. */
function recordingBudget(capacityBytes: number) {
  const inner = createMemoryBudget({ capacityBytes, maxQueue: 4, maxWaitMs: 0, retryAfterSeconds: 3 });
  const asked: { label: string; bytes: number }[] = [];
  const budget: MemoryBudget = Object.assign(Object.create(inner) as MemoryBudget, {
    reserve: (bytes: number, options?: { label?: string; maxWaitMs?: number }) => {
      asked.push({ label: options?.label ?? "", bytes });
      return inner.reserve(bytes, options);
    },
  });
  return { budget, asked, inner };
}

/** A fresh app whose requests reserve in `budget` (the model in a ledger of its own). */
function freshApp(budget?: MemoryBudget) {
  const app = createApp({ models: createModelHolder(), budget });
  return (path: string) => app.request(`https://edge.test${path}`, undefined, { ...env, POINTER_CHECK_SECONDS: "0" });
}

/**
 * Publishes a tiny package with `report` (bytes) and `thumbnails` (bytes) in its report block, as the
 * exporter names them; `manifestReport` overrides the block's figures (a damaged or oversized package).
 */
async function publishWithReport(
  id: string,
  files: { report?: Uint8Array; thumbnails?: Uint8Array; calibration?: boolean },
  manifestReport: Partial<NonNullable<Manifest["report"]>> = {},
) {
  const pkg = await makeTinyPackage({ id });
  const manifest: Manifest = { ...pkg.manifest };
  if (files.calibration) manifest.calibration = (defaultManifest as unknown as Manifest).calibration;
  if (files.report) {
    manifest.report = { file: "report.json", bytes: files.report.length, sha256: await sha256(files.report), ...manifestReport };
    await env.MODELS.put(`models/${id}/report.json`, files.report);
    if (files.thumbnails) {
      manifest.report.thumbnails = { file: "thumbnails.png", bytes: files.thumbnails.length, sha256: await sha256(files.thumbnails) };
      await env.MODELS.put(`models/${id}/thumbnails.png`, files.thumbnails);
    }
  }
  await publishToBucket(env.MODELS, { manifest, weights: pkg.weights });
  return manifest;
}

interface Info {
  id: string;
  calibration: { temperature: number; ood_threshold: number; tpr?: number; metrics?: Record<string, unknown> } | null;
  report: typeof defaultReport | null;
  thumbnails_url: string | null;
}

const REPORT = encoder.encode(JSON.stringify(defaultReport));
const SPRITE = encodePng(
  64,
  32,
  new Uint8Array(64 * 32 * 3).map((_, i) => i % 251),
);

describe("GET /v1/models: calibration and report card", () => {
  it("carries the report and the calibration as the package holds them, and streams the sprite by id", async () => {
    await publishWithReport("carded-v1", { report: REPORT, thumbnails: SPRITE, calibration: true });
    const fetch = freshApp();
    const response = await fetch("/v1/models");
    expect(response.status).toBe(200);
    const body = await response.json<Info>();
    expect(body.report).toEqual(defaultReport);
    const cal = (defaultManifest as unknown as Manifest).calibration!;
    expect(body.calibration).toMatchObject({ temperature: cal.temperature, ood_threshold: cal.ood.threshold, tpr: 0.95 });
    expect(body.calibration!.metrics).toEqual(cal.metrics);
    expect(body.thumbnails_url).toBe("/v1/models/carded-v1/thumbnails.png");

    const sprite = await fetch(body.thumbnails_url!);
    expect(sprite.status).toBe(200);
    expect(sprite.headers.get("content-type")).toBe("image/png");
    expect(new Uint8Array(await sprite.arrayBuffer())).toEqual(SPRITE);
    // Only the served package's sprite: any other id, even one in the bucket, is not found.
    expect((await fetch("/v1/models/other-v1/thumbnails.png")).status).toBe(404);
  });

  it("the default model's report holds what the Model view draws, for the images its calibration never saw", () => {
    expect(defaultReport.dataset).toBe("fashion-mnist/test images 5000-9999");
    expect(defaultReport.ece.after).toBeLessThanOrEqual(0.015);
    expect(defaultReport.confusion.flat().reduce((a, b) => a + b, 0)).toBe(defaultReport.count);
    expect(defaultReport.per_class.map((r) => r.label)).toEqual(defaultManifest.labels);
    expect(defaultReport.reliability.after.reduce((a, b) => a + b.count, 0)).toBe(defaultReport.count);
    expect(defaultReport.curves.epoch.length).toBe(defaultReport.curves.test_top1.length);
    expect(Object.keys(defaultReport.ood.sets).sort()).toEqual(["characters", "photographs", "synthetic"]);
  });

  it("answers null for a package without calibration or report, and 404 for its sprite", async () => {
    await publishWithReport("plain-v1", {});
    const fetch = freshApp();
    const body = await (await fetch("/v1/models")).json<Info>();
    expect(body).toMatchObject({ id: "plain-v1", calibration: null, report: null, thumbnails_url: null });
    expect((await fetch("/v1/models/plain-v1/thumbnails.png")).status).toBe(404);
  });

  it("charges the report to the memory ledger while the answer is made, and gives it back", async () => {
    await publishWithReport("charged-v1", { report: REPORT });
    const { budget, asked, inner } = recordingBudget(64 << 20);
    const response = await freshApp(budget)("/v1/models");
    expect(response.status).toBe(200);
    expect((await response.json<Info>()).report).toEqual(defaultReport);
    expect(asked.filter((a) => a.label.startsWith("report"))).toEqual([
      { label: expect.any(String), bytes: REPORT.length * REPORT_MEMORY_FACTOR },
    ]);
    expect(inner.reservedBytes).toBe(0);

    // A ledger without room for it: 503 overloaded, as any request that does not fit.
    const tight = recordingBudget(REPORT.length * REPORT_MEMORY_FACTOR - 1);
    const refused = await freshApp(tight.budget)("/v1/models");
    expect(refused.status).toBe(503);
    expect((await refused.json<{ error: { code: string } }>()).error.code).toBe("overloaded");
  });

  it("leaves out a report over 256 KiB, or one that differs from its manifest, reading none of it", async () => {
    const big = encoder.encode(JSON.stringify({ ...defaultReport, padding: "x".repeat(MAX_REPORT_BYTES) }));
    await publishWithReport("oversized-v1", { report: big });
    const { budget, asked } = recordingBudget(64 << 20);
    const body = await (await freshApp(budget)("/v1/models")).json<Info>();
    expect(body).toMatchObject({ id: "oversized-v1", report: null });
    expect(asked).toEqual([]); // refused from the manifest's figure, before any memory or R2 read

    const damaged = new Uint8Array(REPORT);
    damaged[10] = damaged[10]! ^ 1;
    await publishWithReport("damaged-v1", { report: REPORT }, { sha256: await sha256(damaged) });
    const fetch = freshApp();
    expect((await (await fetch("/v1/models")).json<Info>()).report).toBeNull();
  });
});
