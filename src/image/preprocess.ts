/**
 * The manifest's preprocessing (docs/model-package.md, "preprocess"), as training does it: colour, resize of
 * the shorter side, centre crop, scale and normalise, into the engine's NHWC float input.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { toLuma } from "./color";
import type { Raster } from "./raster";
import { type ResizeWindow, resizeWindow } from "./resize";

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
  const pixels = resizeWindow(source, resizeTarget(source.width, source.height, preprocess, input));
  return normalize(pixels, source.channels, preprocess, input);
}

/** The resize (shorter side to preprocess.resize.shorter_side) and its centre crop, as one window. */
export function resizeTarget(width: number, height: number, preprocess: Preprocess, input: InputShape): ResizeWindow {
  const size = resizedSize(width, height, preprocess.resize.shorter_side);
  const { height: ch, width: cw } = input;
  return { ...size, top: cropOffset(size.height, ch), left: cropOffset(size.width, cw), windowHeight: ch, windowWidth: cw };
}

/** The resized window's pixel values (`step` channels) scaled and normalised into the model's NHWC input. */
export function normalize(pixels: Float32Array, step: number, preprocess: Preprocess, input: InputShape): Float32Array {
  const { height: ch, width: cw, channels } = input;
  const { scale, mean, std } = preprocess;
  const tensor = new Float32Array(ch * cw * channels);
  for (let p = 0, s = 0, o = 0; p < ch * cw; p++, s += step) {
    for (let c = 0; c < channels; c++, o++) {
      const value = pixels[step === 1 ? s : s + c]! / scale;
      tensor[o] = (value - mean[c]!) / std[c]!;
    }
  }
  return tensor;
}
