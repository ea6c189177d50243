import { expect, it } from "vitest";
import { prepareImage } from "../../src/image";
import { fixture, identity, maxAbsDiff, pillowPixels } from "./fixtures";

it.each([2, 3, 4, 5, 6, 7, 8])("a JPEG with EXIF orientation %i is turned the way a photo viewer shows it", async (orientation) => {
  const name = `jpeg-orientation-${orientation}.jpg`;
  const expected = pillowPixels(name); // Pillow's ImageOps.exif_transpose
  const { preprocess, input } = identity(expected.height, expected.width);
  const result = await prepareImage(fixture(name), preprocess, input);
  const turned = orientation >= 5;
  expect(result.source).toEqual({ type: "jpeg", width: turned ? 32 : 48, height: turned ? 48 : 32 });
  expect(maxAbsDiff(result.tensor, expected.data)).toBeLessThanOrEqual(1);
});
