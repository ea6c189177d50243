import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app";
import { createMemoryBudget } from "../../src/memory/budget";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

describe("GET /readyz", () => {
  it("reports the model's wasm memory and the ledger's reserved bytes and capacity", async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-ready" }));
    const budget = createMemoryBudget({ capacityBytes: 50_000_000, maxQueue: 1, maxWaitMs: 0, retryAfterSeconds: 1 });
    const app = createApp({ budget });
    const held = budget.tryReserve(1_234_567, "test")!;
    const response = await app.request("https://edge.test/readyz", {}, { ...env, POINTER_CHECK_SECONDS: "0" });
    held.release();
    expect(response.status).toBe(200);
    const body = await response.json<{ status: string; model: string; memory: Record<string, number> }>();
    expect(body.status).toBe("ready");
    expect(body.model).toBe("tiny-ready");
    expect(body.memory.reserved_bytes).toBe(1_234_567);
    expect(body.memory.budget_bytes).toBe(50_000_000);
    // tfjs's wasm heap starts at 16 MiB; our kernels add their own memory on top.
    expect(body.memory.model_wasm_bytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(body.memory.decoder_wasm_bytes).toBe(0);
    expect(body.memory.decoder_wasm_peak_bytes).toBeGreaterThanOrEqual(0);
  });
});
