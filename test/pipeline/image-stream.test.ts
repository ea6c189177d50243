import { describe, expect, it } from "vitest";
import { ImageError, prepareImage } from "../../src/image";
import { imageStreamToTensor } from "../../src/pipeline/image-stream";
import { fixture, identity } from "../image/fixtures";
import { testPicture } from "../support/png";
import { mulberry32 } from "../support/random";

const { preprocess, input } = identity(32, 48);
const grey = { ...preprocess, color: "gray" as const };

async function* pieces(bytes: Uint8Array, sizes: () => number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; ) {
    const n = Math.max(1, sizes());
    yield bytes.slice(at, at + n);
    at += n;
  }
}

/** Streams `bytes` through the pipeline in pieces, recording what it asked of the ledger. */
async function streamed(bytes: Uint8Array, sizes: () => number, p = preprocess) {
  const seen = { committed: [] as number[], working: [] as number[] };
  const prepared = await imageStreamToTensor(
    pieces(bytes, sizes),
    p,
    input,
    {
      commit: (n) => seen.committed.push(n),
      reserveWorking: async (n) => {
        seen.working.push(n);
      },
    },
    4 * 1024 * 1024,
    () => new Error("empty"),
  );
  return { prepared, seen };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe("a raw body streams through the pipeline into the same input the whole file gives", () => {
  const jpegs = ["jpeg-baseline.jpg", "jpeg-progressive.jpg", "jpeg-grey.jpg", "jpeg-cmyk.jpg", "parity-scaled.jpg", "jpeg-12mp.jpg"];
  for (const name of jpegs) {
    it(`${name}: the same floats as decoding the whole file, in 1, 7 and random-size pieces, holding only its header`, async () => {
      const bytes = fixture(name);
      const whole = await prepareImage(bytes, preprocess, input);
      const random = mulberry32(bytes.length);
      const splits =
        bytes.length > 20_000
          ? [() => 4096, () => 1 + Math.floor(random() * 20_000)]
          : [() => 1, () => 7, () => 1 + Math.floor(random() * 64)];
      for (const sizes of splits) {
        const { prepared, seen } = await streamed(bytes, sizes);
        expect(prepared.source).toEqual(whole.source);
        expect(maxDiff(prepared.tensor, whole.tensor)).toBe(0);
        // Only the header segments were gathered, never the file.
        expect(Math.max(...seen.committed)).toBeLessThan(Math.min(bytes.length, 64 * 1024) + 20_000);
        expect(seen.working).toHaveLength(1);
      }
    });
  }

  for (const orientation of [2, 3, 4, 5, 6, 7, 8]) {
    it(`jpeg-orientation-${orientation}.jpg: turned as the whole-file decode turns it, to float rounding`, async () => {
      const bytes = fixture(`jpeg-orientation-${orientation}.jpg`);
      for (const p of [preprocess, grey]) {
        const whole = await prepareImage(bytes, p, input);
        const { prepared } = await streamed(bytes, () => 5, p);
        expect(prepared.source).toEqual(whole.source);
        expect(maxDiff(prepared.tensor, whole.tensor)).toBeLessThan(1e-4);
      }
    });
  }

  it("a PNG streams with nothing gathered and gives the whole file's floats", async () => {
    const bytes = testPicture(300, 3);
    const whole = await prepareImage(bytes, preprocess, input);
    const { prepared, seen } = await streamed(bytes, () => 333);
    expect(maxDiff(prepared.tensor, whole.tensor)).toBe(0);
    expect(seen.committed).toEqual([]);
  });

  it("a WebP is gathered whole and decoded as before", async () => {
    const bytes = fixture("image.webp");
    const whole = await prepareImage(bytes, preprocess, input);
    const { prepared, seen } = await streamed(bytes, () => 100);
    expect(maxDiff(prepared.tensor, whole.tensor)).toBe(0);
    expect(Math.max(...seen.committed)).toBeGreaterThanOrEqual(bytes.length);
  });

  it("a JPEG cut short is refused as the whole-file decoder refuses it (422)", async () => {
    const error = await streamed(fixture("jpeg-truncated.jpg"), () => 50).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageError);
    expect((error as ImageError).status).toBe(422);
  });
});
