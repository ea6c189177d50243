import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/http/app";
import { createModelHolder, type ModelHolderOptions } from "../../src/model/served-model";
import { faultyBucket, type FaultKind } from "../support/faulty-bucket";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";
import { loggedEvents } from "../support/logged-events";

const WEIGHTS = /\/weights\.safetensors$/;
const R2_KEY_OR_HASH = /models\/|[0-9a-f]{64}|safetensors/;

/** An app over a fault injector around the real local R2 bucket, on a clock the test moves by hand. */
function appWithFaults(options: ModelHolderOptions = {}) {
  const clock = { now: 0 };
  const faulty = faultyBucket(env.MODELS);
  const models = createModelHolder({ now: () => clock.now, retry: { baseMs: 1000, maxMs: 8000 }, ...options });
  const app = createApp({ models });
  const classify = () =>
    app.request(
      "https://edge.test/v1/classify",
      { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, 1) },
      { ...env, MODELS: faulty.bucket, POINTER_CHECK_SECONDS: "0" },
    );
  return { clock, faulty, models, classify };
}

type ErrorBody = { error: { code: string; message: string } };

/** The JSON objects logged with console.error so far. */
const loggedErrors = loggedEvents;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("R2 faults while a model loads", () => {
  const bodyFaults: [FaultKind, string, RegExp][] = [
    ["throw", "R2 throws on the weights read", /internal error/],
    ["error-midway", "the weights body errors midway", /connection was reset/],
    ["cut-short", "the weights body ends early", /body ended after \d+ of \d+ bytes/],
  ];
  for (const [kind, what, logDetail] of bodyFaults) {
    it(`answers 503 model_unavailable with Retry-After when ${what}, naming no R2 key or hash, and logs the detail`, async () => {
      const pkg = await makeTinyPackage({ id: `fault-${kind}-v1` });
      await publishToBucket(env.MODELS, pkg);
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const { faulty, classify } = appWithFaults();
      faulty.faults.push({ kind, key: WEIGHTS, afterBytes: Math.floor(pkg.weights.length / 2) });

      const response = await classify();
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("1");
      const body = await response.json<ErrorBody>();
      expect(body.error.code).toBe("model_unavailable");
      expect(body.error.message).not.toMatch(R2_KEY_OR_HASH);
      const logged = loggedErrors(errors).find((e) => e.event === "model_load_failed");
      expect(logged).toMatchObject({ model: pkg.manifest.id, code: "model_unavailable" });
      expect(String(logged!.detail)).toContain(`models/${pkg.manifest.id}/weights.safetensors`);
      expect(String(logged!.detail)).toMatch(logDetail);
    });
  }

  it("answers 503 model_unavailable when R2 never answers, or stalls midway, past the read timeout", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "fault-stall-v1" }));
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    for (const kind of ["hang", "stall-midway"] as const) {
      const { faulty, classify } = appWithFaults({ r2TimeoutMs: 100 });
      faulty.faults.push({ kind, key: WEIGHTS, afterBytes: 200 });
      const response = await classify();
      expect(response.status).toBe(503);
      expect((await response.json<ErrorBody>()).error.code).toBe("model_unavailable");
    }
    const details = loggedErrors(errors).map((e) => String(e.detail));
    expect(details).toEqual([
      expect.stringMatching(/get models\/.*no answer within 100 ms/),
      expect.stringMatching(/reading models\/.*at byte \d+: no answer within 100 ms/),
    ]);
  });

  it("does not re-read a failed package for requests inside its backoff window, and loads it once the window has passed", async () => {
    const pkg = await makeTinyPackage({ id: "fault-backoff-v1" });
    await publishToBucket(env.MODELS, pkg);
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { clock, faulty, models, classify } = appWithFaults();
    faulty.faults.push({ kind: "throw", key: WEIGHTS });
    const weightReads = () => faulty.gets.filter((key) => WEIGHTS.test(key)).length;

    expect((await classify()).status).toBe(503);
    expect(weightReads()).toBe(1);
    clock.now = 400; // inside the first window (1 s): answered at once, nothing re-read
    const results = await Promise.all(Array.from({ length: 4 }, classify));
    expect(results.map((r) => r.status)).toEqual([503, 503, 503, 503]);
    expect(results[0]!.headers.get("retry-after")).toBe("1");
    expect(weightReads()).toBe(1);
    expect(models.loadCount).toBe(1);

    clock.now = 1000; // the window has passed: one retry, which fails again and doubles the window
    expect((await classify()).status).toBe(503);
    expect(weightReads()).toBe(2);
    clock.now = 2500;
    const inSecondWindow = await classify();
    expect(inSecondWindow.status).toBe(503);
    expect(inSecondWindow.headers.get("retry-after")).toBe("1"); // 3000 - 2500 ms, rounded up
    expect(weightReads()).toBe(2);

    faulty.faults.length = 0; // R2 recovers
    clock.now = 3000;
    const recovered = await classify();
    expect(recovered.status).toBe(200);
    expect((await recovered.json<{ model: string }>()).model).toBe(pkg.manifest.id);
  });

  it("backs off when the pointer itself cannot be read, answering 503 at once inside the window", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "fault-pointer-v1" }));
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { clock, faulty, classify } = appWithFaults();
    faulty.faults.push({ kind: "throw", key: /^models\/current\.json$/ });
    expect((await classify()).status).toBe(503);
    clock.now = 500;
    const again = await classify();
    expect(again.status).toBe(503);
    expect((await again.json<ErrorBody>()).error.code).toBe("model_unavailable");
    expect(faulty.gets).toEqual(["models/current.json"]);
  });

  it("keeps serving the old model when R2 fails while a newly published one loads", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    vi.spyOn(console, "log").mockImplementation(() => {});
    const { faulty, classify } = appWithFaults();
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "fault-old-v1" }));
    expect((await (await classify()).json<{ model: string }>()).model).toBe("fault-old-v1");
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "fault-new-v1", seed: 2 }));
    faulty.faults.push({ kind: "error-midway", key: /fault-new-v1\/weights/, afterBytes: 64 });
    const response = await classify();
    expect(response.status).toBe(200);
    expect((await response.json<{ model: string }>()).model).toBe("fault-old-v1");
  });
});
