import { it } from "vitest";
import { expectParity } from "./fixtures";
import { webpFixture, webpParity } from "./webp-fixtures";

// The reference is training's arithmetic on Pillow's full-size decode: torch resizes (bilinear, antialias)
// the uint8 pixels, crops and normalises (scripts/make_webp_fixtures.py). The Worker decodes scaled to twice
// the resize (libwebp's rescaler averages the source pixels) and resizes that: a different downscaling
// path, so the differences concentrate at sharp edges. Tolerances are on normalised values (one 8-bit
// level is ~0.017 at ImageNet's std); measured values are printed and noted.
const tolerance: Record<string, { max: number; mean: number }> = {
  // 600x400 lossy, decoded at 192x128 for a 64 px resize (measured 2.3e-1 max, 1.4e-2 mean; the JPEG
  // equivalent, parity-scaled.jpg, measured 9.6e-2 max)
  "parity-scaled.webp": { max: 0.29, mean: 0.0175 }, // measured 0.231 max, 0.0140 mean (2026-12-03)
  // 2400x1600 (3.8 MP) lossy, decoded at 384x256 for a 128 px resize (measured 6.4e-2 max, 8.2e-3 mean)
  "parity-large.webp": { max: 0.08, mean: 0.0103 }, // measured 0.0639 max, 0.0082 mean
  // 150x100 lossless with alpha over (255, 128, 0), decoded at 120x80 for a 40 px resize: libwebp scales
  // premultiplied colours and un-premultiplies them to 8 bits (coarse where alpha is low), Pillow
  // composites at full size first (measured 1.2e-1 max, 1.1e-2 mean)
  "parity-lossless-alpha.webp": { max: 0.144, mean: 0.0133 }, // measured 0.115 max, 0.0106 mean
};

it.each(Object.keys(tolerance))("%s is preprocessed as training preprocesses Pillow's full decode", async (name) => {
  await expectParity(name, webpFixture(name), webpParity[name]!, tolerance[name]!);
});
