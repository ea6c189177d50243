/** Access to the generated fixtures (test/fixtures/images, written by scripts/make_image_fixtures.py). */
import { expect } from "vitest";
import { ImageError, prepareImage } from "../../src/image";
import type { InputShape, Preprocess } from "../../src/package/manifest";
import { BACKGROUND, decoded, files, parity } from "../fixtures/images";

export { BACKGROUND, parity };

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function fixture(name: string): Uint8Array {
  const text = files[name];
  if (text === undefined) throw new Error(`no fixture ${name}`);
  return fromBase64(text);
}

/** What Pillow decodes the fixture to (RGB, EXIF applied, alpha over BACKGROUND). */
export function pillowPixels(name: string): { height: number; width: number; data: Uint8Array } {
  const entry = decoded[name];
  if (!entry) throw new Error(`no decoded reference for ${name}`);
  return { height: entry[0], width: entry[1], data: fromBase64(entry[2]) };
}

export function float32(base64: string): Float32Array {
  const bytes = fromBase64(base64);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Preprocessing that leaves the pixels as they are: no resize, no crop, values 0-255, RGB. */
export function identity(height: number, width: number): { preprocess: Preprocess; input: InputShape } {
  return {
    preprocess: {
      color: "rgb",
      background: BACKGROUND,
      resize: { shorter_side: Math.min(height, width), filter: "bilinear" },
      crop: { mode: "center", height, width },
      scale: 1,
      mean: [0, 0, 0],
      std: [1, 1, 1],
    },
    input: { height, width, channels: 3 },
  };
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** The ImageError that prepareImage refuses `bytes` with; fails the test if it is accepted or throws another error. */
export async function refusal(bytes: Uint8Array, preprocess: Preprocess, input: InputShape): Promise<ImageError> {
  try {
    await prepareImage(bytes, preprocess, input);
  } catch (error) {
    if (error instanceof ImageError) return error;
    throw new Error(`expected an ImageError, got ${String(error)}`, { cause: error });
  }
  throw new Error("expected the image to be refused");
}

/**
 * Runs `bytes` through the pipeline and checks its input tensor against training's (`expected`, base64 f32) within
 * `tolerance` on normalised values, largest and mean difference; prints both, since the tests note measured values.
 */
export async function expectParity(
  name: string,
  bytes: Uint8Array,
  reference: { preprocess: Preprocess; input: InputShape; expected: string },
  tolerance: { max: number; mean: number },
): Promise<void> {
  const { preprocess, input } = reference;
  const result = await prepareImage(bytes, preprocess, input);
  const expected = float32(reference.expected);
  const diffs = Array.from(result.tensor, (v, i) => Math.abs(v - expected[i]!));
  const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
  console.log(`${name}: max |ours - torch| = ${maxAbsDiff(result.tensor, expected).toExponential(2)}, mean ${mean.toExponential(2)}`);
  expect(result.tensor.length).toBe(input.height * input.width * input.channels);
  expect(maxAbsDiff(result.tensor, expected)).toBeLessThanOrEqual(tolerance.max);
  expect(mean).toBeLessThanOrEqual(tolerance.mean);
}
