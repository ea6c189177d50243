/**
 * How an int8 convolution codes its float input (docs/model-package.md, "The served arithmetic"):
 * q = clamp(round_half_even(x * inv), lo, hi) + zp, a 7-bit code in 0..127 (where WebAssembly's relaxed
 * int8 dot product is defined on every CPU), and x is taken as (q - zp) * xScale.
 *
 * Two rules, chosen by the package's `quantization.conv_activations`:
 * - "7-bit-per-tensor-min-max" (what the exporter writes now): the tensor's range [min(x, 0), max(x, 0)]
 *   spread over all 128 codes. After a ReLU that is [0, max] with zp 0; for the image it spends every code
 *   on values that occur (a normalized Fashion-MNIST image is -0.81..2.02: steps of 0.022 instead of 0.032).
 * - "7-bit-per-tensor-dynamic" (packages written before): the same after a ReLU, but a signed input takes
 *   -63..63 around zp 64, symmetric in max|x|, which leaves half the codes of a lopsided range unused.
 * Every fp32 step is rounded with Math.fround in the order the exporter (training/quantize.py) computes it.
 */

export interface InputCode {
  inv: number;
  xScale: number;
  lo: number;
  hi: number;
  zp: number;
}

export type CodeRule = "7-bit-per-tensor-min-max" | "7-bit-per-tensor-dynamic";

/** Rounds to the nearest integer, ties to even (as f32x4.nearest and torch.round do). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The code for values in [min, max] (either may be any float; the range always includes 0). */
export function minMaxCode(min: number, max: number): InputCode {
  const lo = Math.min(min, 0);
  const range = Math.fround(Math.max(max, 0) - lo);
  if (range === 0) return { inv: 0, xScale: 0, lo: 0, hi: 127, zp: 0 };
  const inv = Math.fround(127 / range);
  // 0 must be a code exactly (zero padding is zp); rounding it costs at most half a step at the low end
  const zp = Math.min(127, Math.max(0, roundHalfEven(Math.fround(-lo * inv))));
  return { inv, xScale: Math.fround(range / 127), lo: -zp, hi: 127 - zp, zp };
}

/** The older packages' code for a signed input: -63..63 around 64, symmetric in m = max|x|. */
export function symmetricCode(m: number): InputCode {
  return { inv: m > 0 ? Math.fround(63 / m) : 0, xScale: Math.fround(m / 63), lo: -63, hi: 63, zp: 64 };
}
