/**
 * The manifest's preprocessing (docs/model-package.md, "preprocess"), as training does it: colour, resize of
 * the shorter side, centre crop, scale and normalise, into the engine's NHWC float input.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { toLuma } from "./color";
import type { Raster } from "./raster";
import { resizeWindow } from "./resize";

/**
 * torchvision Resize(int) sizes (transforms/functional.py, _compute_resized_output_size): the shorter side
 * becomes `size`, the longer floor(size * long / short).
 */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.floor((size * height) / width) };
  return { width: Math.floor((size * width) / height), height: size };
}

/**
 * torchvision CenterCrop's offset: round((size - crop) / 2) with Python's round (half to even); a crop larger
 * than the image is padded with zeros equally (the extra pixel at the end), which is a negative offset.
 */
export function cropOffset(size: number, crop: number): number {
  if (crop > size) return -Math.floor((crop - size) / 2);
  const half = (size - crop) / 2;
  const down = Math.floor(half);
  return half - down === 0.5 ? (down % 2 === 0 ? down : down + 1) : Math.round(half);
}

/** The model input for `image`: input.height * input.width * input.channels floats, NHWC. */
export function toInputTensor(image: Raster, preprocess: Preprocess, input: InputShape): Float32Array {
  if (preprocess.color === "rgb" && input.channels !== 3) {
    throw new Error(`preprocess.color "rgb" needs input.channels 3, not ${input.channels}`);
  }
  // "gray" is Pillow's convert("L"), taken before resizing as training does; a grey image stays one channel
  // through the resize even for "rgb" (Pillow's convert("RGB") of grey repeats it: the same values).
  const source = preprocess.color === "gray" ? toLuma(image) : image;
  const size = resizedSize(source.width, source.height, preprocess.resize.shorter_side);
  const { height: ch, width: cw } = input;
  const pixels = resizeWindow(source, {
    ...size,
    top: cropOffset(size.height, ch),
    left: cropOffset(size.width, cw),
    windowHeight: ch,
    windowWidth: cw,
  });

  const channels = input.channels;
  const step = source.channels; // 1: the same value feeds every input channel
  const scale = preprocess.scale;
  const mean = preprocess.mean;
  const std = preprocess.std;
  const tensor = new Float32Array(ch * cw * channels);
  for (let p = 0, s = 0, o = 0; p < ch * cw; p++, s += step) {
    for (let c = 0; c < channels; c++, o++) {
      const value = pixels[step === 1 ? s : s + c]! / scale;
      tensor[o] = (value - mean[c]!) / std[c]!;
    }
  }
  return tensor;
}
