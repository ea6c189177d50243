/**
 * Antialiased bilinear resampling, computing exactly what training computes:
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True) on the uint8 pixels
 * as float (aten/src/ATen/native/cpu/UpSampleKernel.cpp, `_compute_indices_weights_aa`, the same filter as
 * Pillow's BILINEAR resize): a separable triangle filter whose support widens with the downscale factor, on
 * half-pixel centres, weights normalised per output pixel; width first, then height, in float32.
 *
 * Only a window of the resized image is computed (the centre crop), so no full-size resized copy exists.
 */
import type { Raster } from "./raster";

export interface ResizeWindow {
  height: number; // size of the whole resized image
  width: number;
  top: number; // the window of it to compute; may reach outside, where the result is 0 (torchvision pads)
  left: number;
  windowHeight: number;
  windowWidth: number;
}

export interface AxisTaps {
  first: Int32Array; // first input index per output index
  count: Int32Array; // number of taps (0 outside the resized image)
  weights: Float32Array; // `stride` per output index
  stride: number;
}

/** The filter taps for output indices [start, start + n) of an axis resized from `inSize` to `outSize`. */
export function axisTaps(inSize: number, outSize: number, start: number, n: number): AxisTaps {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1); // interp_size / 2 * scale, interp_size = 2 for bilinear
  const invScale = scale >= 1 ? 1 / scale : 1;
  const stride = Math.ceil(support) * 2 + 1;
  const taps: AxisTaps = { first: new Int32Array(n), count: new Int32Array(n), weights: new Float32Array(n * stride), stride };
  for (let k = 0; k < n; k++) {
    const i = start + k;
    if (i < 0 || i >= outSize) continue; // padding: no taps, value 0
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const size = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let total = 0;
    for (let j = 0; j < size; j++) {
      const w = Math.max(0, 1 - Math.abs((j + lo - center + 0.5) * invScale));
      taps.weights[k * stride + j] = w;
      total += w;
    }
    if (total !== 0) for (let j = 0; j < size; j++) taps.weights[k * stride + j]! /= total;
    taps.first[k] = lo;
    taps.count[k] = size;
  }
  return taps;
}

/** The window of `image` resized to `height` x `width`, as float pixel values (0-255), HWC. */
export function resizeWindow(image: Raster, target: ResizeWindow): Float32Array {
  const { width: sw, channels: c, data } = image;
  const { windowHeight: wh, windowWidth: ww } = target;
  const cols = axisTaps(sw, target.width, target.left, ww);
  const rows = axisTaps(image.height, target.height, target.top, wh);

  // Only the source rows some output row reads go through the horizontal pass.
  let rowLo = image.height;
  let rowHi = 0;
  for (let k = 0; k < wh; k++) {
    if (rows.count[k] === 0) continue;
    rowLo = Math.min(rowLo, rows.first[k]!);
    rowHi = Math.max(rowHi, rows.first[k]! + rows.count[k]!);
  }
  const rowSpan = Math.max(0, rowHi - rowLo);

  // Horizontal pass: source rows [rowLo, rowHi) x window columns.
  const tmp = new Float32Array(rowSpan * ww * c);
  for (let y = 0; y < rowSpan; y++) {
    const srcRow = (rowLo + y) * sw * c;
    for (let x = 0; x < ww; x++) {
      const n = cols.count[x]!;
      const w0 = x * cols.stride;
      const s0 = srcRow + cols.first[x]! * c;
      const o = (y * ww + x) * c;
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let j = 0; j < n; j++) sum += cols.weights[w0 + j]! * data[s0 + j * c + ch]!;
        tmp[o + ch] = sum;
      }
    }
  }

  // Vertical pass: window rows x window columns.
  const out = new Float32Array(wh * ww * c);
  const rowLength = ww * c;
  for (let y = 0; y < wh; y++) {
    const n = rows.count[y]!;
    const w0 = y * rows.stride;
    const t0 = (rows.first[y]! - rowLo) * rowLength;
    const o = y * rowLength;
    for (let j = 0; j < n; j++) {
      const w = rows.weights[w0 + j]!;
      const t = t0 + j * rowLength;
      for (let i = 0; i < rowLength; i++) out[o + i]! += w * tmp[t + i]!;
    }
  }
  return out;
}
