import { describe, expect, it } from "vitest";
import { prepareImage } from "../../src/image";
import { fixture, identity, maxAbsDiff, pillowPixels } from "./fixtures";

// Lossless formats must match Pillow exactly. JPEGs are decoded by libjpeg-turbo 2.0 here and 2.1 in Pillow,
// with the same integer IDCT and fancy upsampling: measured identical (0); 1 level allows for a version change.
const cases: [name: string, tolerance: number][] = [
  ["jpeg-baseline.jpg", 1],
  ["jpeg-progressive.jpg", 1],
  ["jpeg-grey.jpg", 1],
  ["jpeg-cmyk.jpg", 1],
  ["png-grey.png", 0],
  ["png-grey-alpha.png", 0],
  ["png-rgb.png", 0],
  ["png-rgba.png", 0],
  ["png-palette-trns.png", 0],
  ["png-rgba16.png", 0],
  ["png-grey16.png", 0],
  ["png-rgb-interlaced.png", 0],
  ["png-grey2-interlaced.png", 0],
];

describe("every supported format", () => {
  it.each(cases)("%s decodes to the size and colours Pillow shows", async (name, tolerance) => {
    const expected = pillowPixels(name);
    const { preprocess, input } = identity(expected.height, expected.width);
    const result = await prepareImage(fixture(name), preprocess, input);
    expect(result.source).toEqual({ type: name.startsWith("png") ? "png" : "jpeg", width: 48, height: 32 });
    expect(maxAbsDiff(result.tensor, expected.data)).toBeLessThanOrEqual(tolerance);
  });
});
