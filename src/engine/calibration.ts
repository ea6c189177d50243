/**
 * The manifest's calibration (docs/model-package.md, "calibration"), computed from a network's logits and
 * its preprocessed input: calibrated probabilities softmax(logits / T), the out-of-distribution score
 * (higher = less like the training data) and whether it passes the threshold. The same arithmetic as
 * training/calibration.py (which works in float64; the Worker's float64 JS numbers agree to ~1e-6).
 */
import type { Calibration } from "../package/manifest";

/** softmax(logits / temperature), in label order. */
export function calibratedProbabilities(logits: ArrayLike<number>, temperature: number): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i]! / temperature - max);
    sum += out[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

/** -t * logsumexp(logits / t) (Liu et al. 2020). */
export function energy(logits: ArrayLike<number>, t: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / t);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! / t - max);
  return -t * (max + Math.log(sum));
}

/**
 * Mean squared z-score of the input's grid x grid cell means (averaged over channels) against the manifest's
 * in-distribution means and stds (+ eps). `input` is NHWC (height * width * channels floats). A cell's mean over
 * its pixels of the channel mean is the mean of all its values: each row of a cell is one contiguous run of
 * the tensor, summed with one load and one add a value (one pass over the input, float64 sums).
 */
export function inputScore(
  input: ArrayLike<number>,
  shape: { height: number; width: number; channels: number },
  params: Calibration["ood"]["input"],
): number {
  const { height: h, width: w, channels: c } = shape;
  const { grid, mean, std, eps } = params;
  let total = 0;
  for (let i = 0; i < grid; i++) {
    const r0 = Math.floor((i * h) / grid);
    const r1 = Math.floor(((i + 1) * h) / grid);
    for (let j = 0; j < grid; j++) {
      const c0 = Math.floor((j * w) / grid);
      const c1 = Math.floor(((j + 1) * w) / grid);
      let sum = 0;
      for (let y = r0; y < r1; y++) {
        const end = (y * w + c1) * c;
        for (let at = (y * w + c0) * c; at < end; at++) sum += input[at]!;
      }
      const cell = sum / ((r1 - r0) * (c1 - c0) * c);
      const k = i * grid + j;
      const z = (cell - mean[k]!) / (std[k]! + eps);
      total += z * z;
    }
  }
  return total / (grid * grid);
}

/**
 * The input part of the ood_score, in units of its in-distribution spread. It needs only the preprocessed input,
 * so a batch computes it when an image is added and keeps this one number instead of the input tensor.
 */
export function inputPart(
  calibration: Calibration,
  input: ArrayLike<number>,
  shape: { height: number; width: number; channels: number },
): number {
  const i = calibration.ood.input;
  return (inputScore(input, shape, i) - i.median) / i.scale;
}

/** The energy part of the ood_score, in units of its in-distribution spread. */
export function energyPart(calibration: Calibration, logits: ArrayLike<number>): number {
  const e = calibration.ood.energy;
  return (energy(logits, e.temperature) - e.median) / e.scale;
}

/** The manifest's ood_score: max of the energy and input parts, each in units of its in-distribution spread. */
export function oodScore(
  calibration: Calibration,
  logits: ArrayLike<number>,
  input: ArrayLike<number>,
  shape: { height: number; width: number; channels: number },
): number {
  return Math.max(energyPart(calibration, logits), inputPart(calibration, input, shape));
}

/** What an answer says of one image: `unknown` when its ood_score passes the threshold (or the request's). */
export function judge(
  calibration: Calibration | undefined,
  logits: ArrayLike<number>,
  input: ArrayLike<number>,
  shape: { height: number; width: number; channels: number },
  threshold?: number,
): { ood_score: number | null; unknown: boolean } {
  if (!calibration) return { ood_score: null, unknown: false };
  return judgeParts(calibration, logits, inputPart(calibration, input, shape), threshold);
}

/** judge() with the input part already computed (a batch keeps that number, not the input). */
export function judgeParts(
  calibration: Calibration,
  logits: ArrayLike<number>,
  fromInput: number,
  threshold?: number,
): { ood_score: number; unknown: boolean } {
  const score = Math.max(energyPart(calibration, logits), fromInput);
  return { ood_score: score, unknown: score > (threshold ?? calibration.ood.threshold) };
}
