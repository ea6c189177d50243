import { describe, expect, it } from "vitest";
import { applyOrientation, type Orientation } from "../../src/image/orientation";
import { toInputTensor } from "../../src/image/preprocess";
import type { Raster } from "../../src/image/raster";
import { createRowPreprocessor } from "../../src/image/row-preprocess";
import type { InputShape, Preprocess } from "../../src/package/manifest";
import { mulberry32 } from "../support/random";

const input: InputShape = { height: 32, width: 32, channels: 3 };
const rgb: Preprocess = {
  color: "rgb",
  resize: { shorter_side: 36, filter: "bilinear" },
  crop: { mode: "center", height: 32, width: 32 },
  scale: 255,
  mean: [0.5, 0.4, 0.3],
  std: [0.2, 0.25, 0.3],
  background: [255, 255, 255],
};
const gray: Preprocess = { ...rgb, color: "gray", mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35] };

function randomRaster(width: number, height: number, channels: 1 | 3, seed: number): Raster {
  const random = mulberry32(seed);
  return { width, height, channels, data: Uint8Array.from({ length: width * height * channels }, () => Math.floor(random() * 256)) };
}

function byRows(image: Raster, preprocess: Preprocess, orientation: Orientation): Float32Array {
  const rows = createRowPreprocessor(image, preprocess, input, orientation);
  const n = image.width * image.channels;
  for (let y = 0; y < image.height; y++) rows.push(image.data.subarray(y * n, (y + 1) * n));
  return rows.finish();
}

describe("preprocessing rows as a decoder gives them", () => {
  it("gives exactly toInputTensor's floats for a picture stored upright, RGB and grey", () => {
    for (const [preprocess, channels] of [
      [rgb, 3],
      [gray, 3],
      [gray, 1],
      [rgb, 1],
    ] as const) {
      const image = randomRaster(120, 90, channels, 7);
      expect(Buffer.from(byRows(image, preprocess, 1).buffer).equals(Buffer.from(toInputTensor(image, preprocess, input).buffer))).toBe(
        true,
      );
    }
  });

  for (const orientation of [2, 3, 4, 5, 6, 7, 8] as const) {
    it(`turns EXIF orientation ${orientation} as applyOrientation then toInputTensor do, to float rounding`, () => {
      for (const [width, height] of [
        [120, 90],
        [91, 200],
        [30, 20],
      ] as const) {
        const image = randomRaster(width, height, 3, width * orientation);
        const expected = toInputTensor(applyOrientation(image, orientation), rgb, input);
        const actual = byRows(image, rgb, orientation);
        let worst = 0;
        for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
        expect(worst, `${width}x${height}`).toBeLessThan(1e-4);
      }
    });
  }
});
