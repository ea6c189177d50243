import { expect, it } from "vitest";
import { decoderMemoryBytes, prepareImage } from "../../src/image";
import { decodeJpeg, dctScale } from "../../src/image/jpeg";
import { fixture } from "./fixtures";

const photo = fixture("jpeg-12mp.jpg"); // 4032x3024, four flat quadrants

it("a 12-megapixel JPEG is decoded at 1/8 scale, so it never exists at full size", () => {
  const { image, scale, memoryBytes } = decodeJpeg(photo, 224);
  expect(scale).toBe(1);
  expect([image.width, image.height]).toEqual([504, 378]);
  // Full size would be 36 MiB of RGB alone (and ~83 MiB of wasm memory through TurboJPEG).
  expect(memoryBytes).toBeLessThan(4 * 1024 * 1024);
  expect(decoderMemoryBytes()).toBe(0); // the instance, and its memory, are gone
});

it("the DCT scale is the smallest n/8 whose shorter side still covers the resize", () => {
  expect(dctScale(4032, 3024, 224)).toBe(1); // 378 >= 224
  expect(dctScale(4032, 3024, 400)).toBe(2); // 1/8 gives 378 < 400; 2/8 gives 756
  expect(dctScale(600, 400, 64)).toBe(2); // 50 < 64 <= 100
  expect(dctScale(51, 34, 31)).toBe(8); // ceil(34 * 7/8) = 30 < 31: full size
  expect(dctScale(100, 50, 300)).toBe(8); // smaller than the input: decoded in full, then upscaled
});

it("a 12-megapixel JPEG becomes a 224x224 input with its colours in place", async () => {
  const preprocess = {
    color: "rgb" as const,
    background: [0, 0, 0] as [number, number, number],
    resize: { shorter_side: 256, filter: "bilinear" as const },
    crop: { mode: "center" as const, height: 224, width: 224 },
    scale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  };
  const times: number[] = [];
  let result: Awaited<ReturnType<typeof prepareImage>> | undefined;
  for (let i = 0; i < 5; i++) {
    result = await prepareImage(photo, preprocess, { height: 224, width: 224, channels: 3 });
    times.push(result.decodeMs + result.preprocessMs);
  }
  console.log(`12 MP JPEG -> 224x224: decode ${result!.decodeMs} ms, preprocess ${result!.preprocessMs} ms; totals ${times.join(", ")} ms`);
  const pixel = (x: number, y: number) => Array.from(result!.tensor.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
  const near = (actual: number[], expected: number[]) =>
    expect(Math.max(...actual.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThanOrEqual(3);
  near(pixel(20, 20), [220, 40, 40]); // top left: red
  near(pixel(203, 20), [40, 200, 60]); // top right: green
  near(pixel(20, 203), [40, 60, 210]); // bottom left: blue
  near(pixel(203, 203), [240, 230, 120]); // bottom right: yellow
  expect(result!.source).toEqual({ type: "jpeg", width: 4032, height: 3024 });
});
