import { it } from "vitest";
import { expectParity, fixture, parity } from "./fixtures";

// The reference is training's arithmetic: Pillow decodes the file, torch resizes (F.interpolate bilinear,
// antialias=True) the uint8 pixels as float, crops and normalises (scripts/make_image_fixtures.py).
// Tolerances are on normalised values (one 8-bit level is ~0.017 at ImageNet's std); measured values noted.
const tolerance: Record<string, { max: number; mean: number }> = {
  "parity-rgb.png": { max: 1e-4, mean: 1e-5 }, // same pixels: float rounding only (measured 4.8e-6 max)
  "parity-rgba.png": { max: 1e-4, mean: 1e-5 }, // alpha over (255, 128, 0) as Pillow composites
  "parity-gray.jpg": { max: 1e-4, mean: 1e-5 }, // full-size JPEG decode: libjpeg-turbo matches Pillow's
  // DCT-scaled decode (at >= 2x the resize size: DECODE_OVERSAMPLING) against Pillow's full 600x400
  // decode: a different downscaling filter, so differences concentrate at sharp edges. Measured 9.55e-2 max,
  // 5.9e-3 mean (2026-12-03); the bounds leave a quarter for float and platform differences, no more.
  "parity-scaled.jpg": { max: 0.12, mean: 0.0075 },
};

it.each(Object.keys(tolerance))("%s is preprocessed as training preprocesses it", async (name) => {
  await expectParity(name, fixture(name), parity[name]!, tolerance[name]!);
});
