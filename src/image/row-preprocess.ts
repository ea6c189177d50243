/**
 * toInputTensor (preprocess.ts) for a decoder that hands over rows as it decodes them: grey conversion per row,
 * the row-by-row resize and centre crop, then scale and normalise. The same pixels in, the same floats out,
 * with no raster held.
 */
import type { InputShape, Preprocess } from "../package/manifest";
import { lumaInto } from "./color";
import { normalize, resizeTarget } from "./preprocess";
import { createRowResizer } from "./row-resize";

export interface RowPreprocessor {
  /** The next row of the decoded image, top to bottom: width * channels samples. */
  push(row: Uint8Array): void;
  /** The model's input, once every row has been pushed. */
  finish(): Float32Array;
  /** What it holds (the resize's window, taps and one row, a grey row, the tensor at the end). */
  readonly heldBytes: number;
}

export function createRowPreprocessor(
  source: { width: number; height: number; channels: 1 | 3 },
  preprocess: Preprocess,
  input: InputShape,
): RowPreprocessor {
  if (preprocess.color === "rgb" && input.channels !== 3) {
    throw new Error(`preprocess.color "rgb" needs input.channels 3, not ${input.channels}`);
  }
  const grey = preprocess.color === "gray" && source.channels === 3;
  const channels = preprocess.color === "gray" ? 1 : source.channels;
  const luma = grey ? new Uint8Array(source.width) : undefined;
  const resizer = createRowResizer({ ...source, channels }, resizeTarget(source.width, source.height, preprocess, input));
  return {
    heldBytes: rowPreprocessBytes(source, preprocess, input),
    push(row) {
      if (luma) {
        lumaInto(row, luma);
        resizer.push(luma);
      } else {
        resizer.push(row);
      }
    },
    finish: () => normalize(resizer.finish(), channels, preprocess, input),
  };
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
