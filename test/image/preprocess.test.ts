import { expect, it } from "vitest";
import type { Preprocess } from "../../src/package/manifest";
import { cropOffset, resizedSize, toInputTensor } from "../../src/image/preprocess";
import { resizeWindow } from "../../src/image/resize";
import type { Raster } from "../../src/image/raster";

const raw = (color: "rgb" | "gray", shorter: number, crop: number): Preprocess => ({
  color,
  background: [0, 0, 0],
  resize: { shorter_side: shorter, filter: "bilinear" },
  crop: { mode: "center", height: crop, width: crop },
  scale: 1,
  mean: [0, 0, 0],
  std: [1, 1, 1],
});

it("the longer side is floored as torchvision's Resize(int) does", () => {
  expect(resizedSize(600, 400, 64)).toEqual({ width: 96, height: 64 });
  expect(resizedSize(451, 300, 31)).toEqual({ width: 46, height: 31 }); // 46.60
  expect(resizedSize(300, 451, 31)).toEqual({ width: 31, height: 46 });
});

it("the centre crop rounds half offsets to even and pads a too-small image, as torchvision's CenterCrop does", () => {
  expect(cropOffset(37, 32)).toBe(2); // round(2.5) = 2
  expect(cropOffset(39, 32)).toBe(4); // round(3.5) = 4
  expect(cropOffset(38, 32)).toBe(3);
  expect(cropOffset(30, 33)).toBe(-1); // 1 pixel of padding before, 2 after
});

it("resizing matches torch's antialiased bilinear when one axis shrinks and the other grows", () => {
  const image: Raster = {
    width: 5,
    height: 3,
    channels: 1,
    data: Uint8Array.from([0, 50, 100, 150, 200, 255, 0, 255, 0, 255, 10, 20, 30, 40, 250]),
  };
  const out = resizeWindow(image, { height: 7, width: 2, top: 0, left: 0, windowHeight: 7, windowWidth: 2 });
  // F.interpolate(x, size=(7, 2), mode="bilinear", align_corners=False, antialias=True), torch 1.13
  const torch = [50, 150, 62.7273, 148.4416, 100.9091, 143.7662, 139.0909, 139.0909, 88.0519, 123.8961, 37.013, 108.7013, 20, 103.6364];
  for (const [i, v] of out.entries()) expect(v).toBeCloseTo(torch[i]!, 3);
});

it("a grey model gets Pillow's luma of a colour image in every input channel", () => {
  const red: Raster = { width: 2, height: 2, channels: 3, data: Uint8Array.from([255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0]) };
  const tensor = toInputTensor(red, raw("gray", 2, 2), { height: 2, width: 2, channels: 3 });
  expect(Array.from(tensor)).toEqual(new Array(12).fill(76)); // (255 * 19595 + 32768) >> 16
});

it("a crop larger than the resized image is padded with zeros around it", () => {
  const white: Raster = { width: 4, height: 4, channels: 3, data: new Uint8Array(48).fill(255) };
  const tensor = toInputTensor(white, raw("rgb", 4, 6), { height: 6, width: 6, channels: 3 });
  const at = (x: number, y: number) => tensor[(y * 6 + x) * 3]!;
  expect([at(0, 0), at(5, 5), at(0, 3), at(4, 5)]).toEqual([0, 0, 0, 0]); // 1 before, 1 after
  expect([at(1, 1), at(4, 4), at(2, 3)]).toEqual([255, 255, 255]);
});

it("normalisation applies scale, then each channel's mean and std", () => {
  const grey: Raster = { width: 1, height: 1, channels: 1, data: Uint8Array.from([51]) };
  const preprocess = { ...raw("rgb", 1, 1), scale: 255, mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2] };
  const tensor = toInputTensor(grey, preprocess, { height: 1, width: 1, channels: 3 });
  for (const [i, v] of [(0.2 - 0.1) / 0.5, (0.2 - 0.2) / 0.25, (0.2 - 0.3) / 2].entries()) expect(tensor[i]).toBeCloseTo(v, 6);
});
