import { expect, it } from "vitest";
import { ImageError, decoderMemoryBytes, prepareImage } from "../../src/image";
import { mulberry32 } from "../support/random";
import { fixture, identity } from "./fixtures";

const { preprocess, input } = identity(32, 48);

/** Seeded (offset, byte) pairs, so a failure can be replayed. */
function* positions(seed: number, count: number, size: number): Generator<[number, number]> {
  const random = mulberry32(seed);
  for (let i = 0; i < count; i++) yield [Math.floor(random() * size), Math.floor(random() * 256)];
}

it.each([
  "jpeg-baseline.jpg",
  "jpeg-progressive.jpg",
  "jpeg-orientation-6.jpg",
  "png-rgba.png",
  "png-rgb-interlaced.png",
  "png-palette-trns.png",
])("%s with any single corrupted byte either decodes or is refused with a 4xx, never a crash", async (name) => {
  const original = fixture(name);
  let refused = 0;
  for (const [at, value] of positions(0x9e3779b9, 300, original.length)) {
    const bytes = original.slice();
    bytes[at] = value;
    try {
      const result = await prepareImage(bytes, preprocess, input);
      expect(result.tensor.length).toBe(32 * 48 * 3);
    } catch (error) {
      if (!(error instanceof ImageError)) throw new Error(`byte ${at} = ${value}: ${String(error)}`, { cause: error });
      refused++;
    }
    expect(decoderMemoryBytes()).toBe(0);
  }
  expect(refused).toBeGreaterThan(0); // the corruption did reach the decoders
});

it.each(["jpeg-baseline.jpg", "jpeg-progressive.jpg", "jpeg-cmyk.jpg", "png-grey-alpha.png", "png-rgba16.png"])(
  "%s cut off anywhere before the end of its image data is refused with a 4xx, never a crash",
  async (name) => {
    const original = fixture(name);
    // A PNG whose image data is complete decodes without its IEND, as in Pillow: the picture is all there.
    const end = name.endsWith(".png") ? original.length - 12 : original.length - 2;
    for (let length = 0; length < end; length += 5) {
      const error = await prepareImage(original.subarray(0, length), preprocess, input).then(
        () => new Error(`cut at ${length} bytes still decoded`),
        (e: unknown) => e,
      );
      expect(error, `cut at ${length}`).toBeInstanceOf(ImageError);
    }
  },
);
