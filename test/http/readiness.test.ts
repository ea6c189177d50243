import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app";
import { createMemoryBudget } from "../../src/memory/budget";
import { files } from "../fixtures/images";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

const fromBase64 = (b64: string): Uint8Array => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

describe("GET /readyz", () => {
  it("reports the model's wasm memory and the ledger's reserved bytes and capacity", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-ready" }));
    const budget = createMemoryBudget({ capacityBytes: 50_000_000, maxQueue: 1, maxWaitMs: 0, retryAfterSeconds: 1 });
    const app = createApp({ budget });
    const held = budget.tryReserve(1_234_567, "test")!;
    const response = await app.request("https://edge.test/readyz", {}, { ...env, POINTER_CHECK_SECONDS: "0" });
    const modelReserved = budget
      .snapshot()
      .filter((r) => r.label.startsWith("model "))
      .reduce((sum, r) => sum + r.bytes, 0);
    held.release();
    expect(response.status).toBe(200);
    const body = await response.json<{ status: string; model: string; memory: Record<string, number> }>();
    expect(body.status).toBe("ready");
    expect(body.model).toBe("tiny-ready");
    // The served model reserves its resident bytes in the same ledger.
    expect(modelReserved).toBeGreaterThan(0);
    expect(body.memory.reserved_bytes).toBe(1_234_567 + modelReserved);
    expect(body.memory.budget_bytes).toBe(50_000_000);
    // The tiny package runs its convolutions on our int8 kernels: their memory, no tfjs heap.
    expect(body.memory.model_wasm_bytes).toBeGreaterThan(0);
    expect(body.memory.decoder_wasm_bytes).toBe(0);
    expect(body.memory.decoder_wasm_peak_bytes).toBeGreaterThanOrEqual(0);
  });

  it("reports the JPEG decoder's peak wasm memory since the previous report, then starts over", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-ready" }));
    const app = createApp();
    const request = (path: string, init?: RequestInit) =>
      app.request(`https://edge.test${path}`, init, { ...env, POINTER_CHECK_SECONDS: "0" });
    const peak = async () =>
      (await (await request("/readyz")).json<{ memory: { decoder_wasm_peak_bytes: number } }>()).memory.decoder_wasm_peak_bytes;
    await peak();
    const classified = await request("/v1/classify", {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: fromBase64(files["jpeg-baseline.jpg"]!),
    });
    expect(classified.status).toBe(200);
    // A 32x48 JPEG: libjpeg-turbo's wasm memory stays at its initial few 64 KiB pages.
    expect(await peak()).toBeGreaterThan(0);
    expect(await peak()).toBe(0);
  });
});
