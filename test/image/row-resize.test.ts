import { describe, expect, it } from "vitest";
import type { Raster } from "../../src/image/raster";
import { resizeWindow } from "../../src/image/resize";
import { createRowResizer } from "../../src/image/row-resize";
import { mulberry32 } from "../support/random";

function randomRaster(width: number, height: number, channels: 1 | 3, seed: number): Raster {
  const random = mulberry32(seed);
  return { width, height, channels, data: Uint8Array.from({ length: width * height * channels }, () => Math.floor(random() * 256)) };
}

function rowByRow(image: Raster, target: Parameters<typeof resizeWindow>[1]): Float32Array {
  const resizer = createRowResizer(image, target);
  const rowBytes = image.width * image.channels;
  for (let y = 0; y < image.height; y++) resizer.push(image.data.subarray(y * rowBytes, (y + 1) * rowBytes));
  return resizer.finish();
}

describe("resizing row by row", () => {
  const cases = [
    [
      "a phone photo's decode down to 224, centre crop",
      1512,
      2016,
      3,
      { width: 224, height: 298, top: 37, left: 0, windowHeight: 224, windowWidth: 224 },
    ],
    ["a screenshot down to 64, landscape", 960, 540, 3, { width: 113, height: 64, top: 0, left: 24, windowHeight: 64, windowWidth: 64 }],
    [
      "grey, a crop larger than the image (padded)",
      40,
      30,
      1,
      { width: 85, height: 64, top: -2, left: 10, windowHeight: 68, windowWidth: 64 },
    ],
    ["an upscale", 20, 13, 3, { width: 99, height: 64, top: 0, left: 17, windowHeight: 64, windowWidth: 64 }],
    ["a tall strip", 7, 3000, 3, { width: 64, height: 27428, top: 13682, left: 0, windowHeight: 64, windowWidth: 64 }],
  ] as const;
  for (const [what, width, height, channels, target] of cases) {
    it(`gives exactly resizeWindow's floats: ${what}`, () => {
      const image = randomRaster(width, height, channels, width + height);
      const whole = resizeWindow(image, target);
      const rows = rowByRow(image, target);
      expect(rows.length).toBe(whole.length);
      expect(Buffer.from(rows.buffer).equals(Buffer.from(whole.buffer))).toBe(true);
    });
  }

  it("holds the window, one row's pass and its taps: no raster, and about 8 bytes of taps per source row", () => {
    const target = { width: 224, height: 224, top: 0, left: 0, windowHeight: 224, windowWidth: 224 };
    const short = createRowResizer({ width: 3000, height: 3000, channels: 3 }, target);
    const tall = createRowResizer({ width: 3000, height: 60_000, channels: 3 }, target);
    // The vertical taps span (source rows / output rows) rows each: 2 floats a source row in all.
    expect(tall.heldBytes - short.heldBytes).toBeLessThanOrEqual(8 * (60_000 - 3000) + 224 * 8);
    expect(tall.heldBytes).toBeLessThan(60_000 * 3000 * 3 * 0.01);
    expect(short.heldBytes).toBeLessThan(224 * 224 * 3 * 4 + 3 * 224 * 4 + 64 * 1024);
  });

  it("refuses a row past the last and a finish before it", () => {
    const resizer = createRowResizer(
      { width: 4, height: 2, channels: 1 },
      { width: 2, height: 1, top: 0, left: 0, windowHeight: 1, windowWidth: 2 },
    );
    resizer.push(new Uint8Array(4));
    expect(() => resizer.finish()).toThrow(/1 of 2 rows/);
    resizer.push(new Uint8Array(4));
    expect(() => resizer.push(new Uint8Array(4))).toThrow(RangeError);
    expect(resizer.finish()).toHaveLength(2);
  });
});
