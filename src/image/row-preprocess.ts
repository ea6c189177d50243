/**
 * toInputTensor (preprocess.ts) for a decoder that hands over rows as it decodes them: grey conversion per row,
 * the row-by-row resize and centre crop, then scale and normalise. The same pixels in, the same floats out,
 * with no raster held.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { lumaInto } from "./color";
import { type Orientation, storedIndex, swapsAxes } from "./orientation";
import { normalize, resizeTarget } from "./preprocess";
import type { ResizeWindow } from "./resize";
import { createRowResizer } from "./row-resize";

export interface RowPreprocessor {
  /** The next row of the decoded image, top to bottom: width * channels samples. */
  push(row: Uint8Array): void;
  /** The model's input, once every row has been pushed. */
  finish(): Float32Array;
  /** What it holds (the resize's window, taps and one row, a grey row, the tensor at the end). */
  readonly heldBytes: number;
}

/**
 * `source` is the image as stored, rows top to bottom as the decoder gives them; `orientation` (EXIF) says how
 * it is displayed. The resize runs on the stored rows towards the window that the displayed picture's resize
 * and crop would take, mapped into stored coordinates, and the small window is turned at the end: the same
 * floats as turning the raster first (the filter is symmetric), up to float rounding.
 */
export function createRowPreprocessor(
  source: { width: number; height: number; channels: 1 | 3 },
  preprocess: Preprocess,
  input: InputShape,
  orientation: Orientation = 1,
): RowPreprocessor {
  if (preprocess.color === "rgb" && input.channels !== 3) {
    throw new Error(`preprocess.color "rgb" needs input.channels 3, not ${input.channels}`);
  }
  const grey = preprocess.color === "gray" && source.channels === 3;
  const channels = preprocess.color === "gray" ? 1 : source.channels;
  const luma = grey ? new Uint8Array(source.width) : undefined;
  const swap = swapsAxes(orientation);
  const [dw, dh] = swap ? [source.height, source.width] : [source.width, source.height];
  const shown = resizeTarget(dw, dh, preprocess, input);
  const resizer = createRowResizer({ ...source, channels }, storedWindow(shown, orientation));
  return {
    heldBytes: rowPreprocessBytes(source, preprocess, input) * (orientation === 1 ? 1 : 2),
    push(row) {
      if (luma) {
        lumaInto(row, luma);
        resizer.push(luma);
      } else {
        resizer.push(row);
      }
    },
    finish: () => {
      const stored = resizer.finish();
      const window = orientation === 1 ? stored : orientWindow(stored, shown.windowWidth, shown.windowHeight, channels, orientation);
      return normalize(window, channels, preprocess, input);
    },
  };
}

/** The displayed picture's resize window in stored coordinates: axes swapped for a quarter turn, ranges mirrored for a flip. */
function storedWindow(shown: ResizeWindow, o: Orientation): ResizeWindow {
  const mirror = (size: number, start: number, n: number) => size - start - n;
  const swap = swapsAxes(o);
  // Which displayed axis each stored axis runs along, and whether it runs backwards (orientation.ts's table).
  const flipX = o === 2 || o === 3 || o === 7 || o === 8; // stored x runs backwards
  const flipY = o === 3 || o === 4 || o === 6 || o === 7; // stored y runs backwards
  const width = swap ? shown.height : shown.width;
  const height = swap ? shown.width : shown.height;
  const windowWidth = swap ? shown.windowHeight : shown.windowWidth;
  const windowHeight = swap ? shown.windowWidth : shown.windowHeight;
  const x0 = swap ? shown.top : shown.left;
  const y0 = swap ? shown.left : shown.top;
  return {
    width,
    height,
    windowWidth,
    windowHeight,
    left: flipX ? mirror(width, x0, windowWidth) : x0,
    top: flipY ? mirror(height, y0, windowHeight) : y0,
  };
}

/** The stored window turned for display: for each displayed (x, y), the stored sample applyOrientation would take. */
function orientWindow(stored: Float32Array, ww: number, wh: number, c: number, o: Orientation): Float32Array {
  const [w, h] = swapsAxes(o) ? [wh, ww] : [ww, wh]; // the stored window's size
  const out = new Float32Array(stored.length);
  for (let y = 0, i = 0; y < wh; y++) {
    for (let x = 0; x < ww; x++, i += c) {
      const s = storedIndex(x, y, w, h, o) * c;
      for (let k = 0; k < c; k++) out[i + k] = stored[s + k]!;
    }
  }
  return out;
}

/** What createRowPreprocessor holds at most for a source of this size: for the cost model, before decoding. */
export function rowPreprocessBytes(
  source: { width: number; height: number; channels: 1 | 3 },
  preprocess: Preprocess,
  input: InputShape,
): number {
  const channels = preprocess.color === "gray" ? 1 : source.channels;
  const target = resizeTarget(source.width, source.height, preprocess, input);
  const taps = (inSize: number, outSize: number, n: number) => n * (8 + 4 * (2 * Math.ceil(Math.max(1, inSize / outSize)) + 1));
  const window = target.windowHeight * target.windowWidth * channels * 4;
  const row = target.windowWidth * channels * 4;
  const tensor = input.height * input.width * input.channels * 4;
  const luma = preprocess.color === "gray" && source.channels === 3 ? source.width : 0;
  return (
    window +
    row +
    taps(source.width, target.width, target.windowWidth) +
    taps(source.height, target.height, target.windowHeight) +
    tensor +
    luma
  );
}
