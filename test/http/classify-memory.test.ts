import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app";
import { planImage } from "../../src/image";
import { fixture } from "../image/fixtures";
import { createMemoryBudget, type MemoryBudget, type ReserveOptions } from "../../src/memory/budget";
import { createModelHolder } from "../../src/model/served-model";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

const URL_CLASSIFY = "https://edge.test/v1/classify";

/** A ledger that also records what the route asked of it. */
function recordingBudget(capacityBytes: number) {
  const inner = createMemoryBudget({ capacityBytes, maxQueue: 16, maxWaitMs: 10_000, retryAfterSeconds: 3 });
  const seen = {
    maxWaiting: 0,
    maxReserved: 0,
    asked: [] as { label: string; bytes: number }[],
    shrunkTo: [] as number[],
    grownTo: [] as number[],
  };
  const budget: MemoryBudget = {
    capacityBytes,
    retryAfterSeconds: inner.retryAfterSeconds,
    get reservedBytes() {
      return inner.reservedBytes;
    },
    get waiting() {
      return inner.waiting;
    },
    tryReserve: (bytes, label) => inner.tryReserve(bytes, label),
    snapshot: () => inner.snapshot(),
    async reserve(bytes: number, options?: ReserveOptions) {
      seen.asked.push({ label: options?.label ?? "", bytes });
      const pending = inner.reserve(bytes, options);
      seen.maxWaiting = Math.max(seen.maxWaiting, inner.waiting);
      const reservation = await pending;
      seen.maxReserved = Math.max(seen.maxReserved, inner.reservedBytes);
      const shrink = reservation.shrink.bind(reservation);
      const resize = reservation.resize.bind(reservation);
      return Object.assign(Object.create(reservation) as typeof reservation, {
        release: () => reservation.release(),
        resize: (to: number) => {
          const done = resize(to);
          if (done) {
            seen.grownTo.push(to);
            seen.maxReserved = Math.max(seen.maxReserved, inner.reservedBytes);
          }
          return done;
        },
        shrink: (to: number) => {
          seen.shrunkTo.push(to);
          return shrink(to);
        },
      });
    },
  };
  // The model reserves its bytes in a ledger of its own here, so these tests see the requests' alone
  // (test/http/model-switch.test.ts covers the model's reservation in the shared ledger).
  const models = createModelHolder({
    budget: createMemoryBudget({ capacityBytes: 1 << 30, maxQueue: 16, maxWaitMs: 10_000, retryAfterSeconds: 3 }),
  });
  return { budget, seen, app: createApp({ budget, models }) };
}

/** Posts to the app directly, declaring the length as a client would (a Request built here has none). */
async function post(app: ReturnType<typeof createApp>, body: Uint8Array | string, type = "image/png"): Promise<Response> {
  const length = typeof body === "string" ? new TextEncoder().encode(body).length : body.length;
  const ctx = createExecutionContext();
  const headers = { "content-type": type, "content-length": String(length) };
  const response = await app.fetch(new Request(URL_CLASSIFY, { method: "POST", headers, body }), env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

const SLACK = 64 * 1024;

describe("each request reserves its memory in the isolate's ledger as it comes to hold it", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-memory-v1" }));
  });

  it("holds the chunk in flight and the answer, grows with the body's bytes as they arrive, then adds the computed decode", async () => {
    const { app, budget, seen } = recordingBudget(64 << 20);
    const image = testPicture(40, 1);
    const json = JSON.stringify({ image: [...image] });
    expect((await post(app, json, "application/json")).status).toBe(200);
    // First only the chunk in flight and the scores: nothing for the length the client declared.
    expect(seen.asked[0]!.bytes).toBeGreaterThanOrEqual(SLACK);
    expect(seen.asked[0]!.bytes).toBeLessThan(SLACK + 4096);
    // A PNG streams out of the JSON into its decoder: nothing gathered, neither the JSON text nor the image.
    expect(seen.grownTo).toEqual([]);
    // Then the decode, computed from the header: the streaming decoder's buffers, the resize and the tensor.
    expect(seen.asked).toHaveLength(2);
    expect(seen.asked[1]!.label).toMatch(/decode$/);
    expect(seen.asked[1]!.bytes).toBeGreaterThan(40 * 40 * 3);
    expect(seen.asked[1]!.bytes).toBeLessThan(1.5 * 1024 * 1024);
    expect(budget.reservedBytes).toBe(0);
  });

  it("a WebP in a JSON body is gathered, and the ledger grows with its bytes as they are decoded (never the JSON text)", async () => {
    const { app, budget, seen } = recordingBudget(64 << 20);
    const webp = fixture("image.webp");
    const json = JSON.stringify({ image: [...webp] });
    expect((await post(app, json, "application/json")).status).toBe(200);
    expect(Math.max(...seen.grownTo)).toBeGreaterThanOrEqual(SLACK + webp.length);
    expect(Math.max(...seen.grownTo)).toBeLessThan(SLACK + 4096 + 2 * webp.length + 64 * 1024);
    expect(budget.reservedBytes).toBe(0);
  });

  it("a body that outgrows the free memory as it arrives gets 503 overloaded with Retry-After, and the next normal one succeeds", async () => {
    // Room for a small request, not for a 2 MB WebP (gathered whole: WebP cannot stream).
    const { app, budget } = recordingBudget(1.5 * 1024 * 1024);
    const webp = new Uint8Array(2 * 1024 * 1024);
    webp.set([0x52, 0x49, 0x46, 0x46, 0xf8, 0xff, 0x1f, 0, 0x57, 0x45, 0x42, 0x50]); // RIFF, 2 MiB - 8, WEBP
    const refused = await post(app, webp, "image/webp");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("3");
    expect((await refused.json<{ error: { code: string } }>()).error.code).toBe("overloaded");
    expect(budget.reservedBytes).toBe(0);
    expect((await post(app, testPicture(40, 2))).status).toBe(200);
  });

  it("concurrent requests whose decodes do not fit together wait in the ledger's queue, then all succeed", async () => {
    // Room for every request's body at once but for about one decode at a time.
    const manifest = (await makeTinyPackage({ id: "tiny-memory-v1" })).manifest;
    const pictures = [1, 2, 3, 4, 5, 6].map((seed) => testPicture(40, seed));
    const decode = planImage(pictures[0]!, manifest.preprocess, manifest.input).workingBytes;
    const perBody = SLACK + 4096 + 2 * pictures[0]!.length + 64 * 1024;
    const { app, budget, seen } = recordingBudget(6 * perBody + Math.floor(1.5 * decode));
    const responses = await Promise.all(pictures.map((picture) => post(app, picture)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(seen.maxWaiting).toBeGreaterThan(0);
    expect(seen.maxReserved).toBeLessThanOrEqual(budget.capacityBytes);
    expect(budget.reservedBytes).toBe(0);
  });

  it("a multipart batch streams: nothing of its body is gathered, and one image's decode is held at a time", async () => {
    const { app, budget, seen } = recordingBudget(64 << 20);
    const images = [10, 20, 40, 30].map((size, i) => testPicture(size, i));
    const form = new FormData();
    for (const [i, image] of images.entries()) form.append("image", new File([image], `${i}.png`));
    const request = new Request(URL_CLASSIFY, { method: "POST", body: form });
    const bytes = new Uint8Array(await request.clone().arrayBuffer());
    const ctx = createExecutionContext();
    const headers = { "content-type": request.headers.get("content-type")!, "content-length": String(bytes.length) };
    const response = await app.fetch(new Request(URL_CLASSIFY, { method: "POST", headers, body: bytes }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(200);
    expect((await response.json<{ results: unknown[] }>()).results).toHaveLength(4);
    // PNG parts stream: nothing is gathered. Each image's decode is reserved in turn, the one before released
    // first, so the most ever held is the base and one decode, never the sum of the four.
    expect(seen.grownTo).toEqual([]);
    const decodes = seen.asked.filter((a) => a.label.endsWith("decode"));
    expect(decodes).toHaveLength(4);
    const base = seen.asked[0]!.bytes;
    expect(seen.maxReserved).toBeLessThanOrEqual(base + Math.max(...decodes.map((d) => d.bytes)));
    // A PNG's decode: its decoder's fixed buffers (the inflater's 1 MiB read, src/image/png-stream.ts) and the resize.
    for (const decode of decodes) expect(decode.bytes).toBeLessThan(40 * 40 * 3 + 1.5 * 1024 * 1024);
    expect(budget.reservedBytes).toBe(0);
  });
});
