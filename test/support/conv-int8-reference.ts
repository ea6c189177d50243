/**
 * The served int8 convolution of docs/model-package.md, computed in plain JS: integer sums exactly,
 * every fp32 step rounded with Math.fround in the order the kernel uses. The kernel must match it bit
 * for bit.
 */
import type { Layer } from "../../src/package/manifest";
import { minMaxCode, roundHalfEven, symmetricCode, type InputCode } from "../../src/engine/input-code";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;

/** How a reference conv codes its input: "unsigned" (after a ReLU), or a package rule for a signed input. */
export type ReferenceCode = "unsigned" | "min-max" | "symmetric";

function codeFor(x: Float32Array, rule: ReferenceCode): InputCode {
  const m = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  if (rule === "unsigned") return minMaxCode(0, m);
  if (rule === "symmetric") return symmetricCode(m);
  return minMaxCode(
    x.reduce((a, v) => Math.min(a, v), 0),
    x.reduce((a, v) => Math.max(a, v), 0),
  );
}

export interface ReferenceConv {
  /** The exact sums sum(w * (q - zp)), [ho][wo][filters]. */
  acc: Int32Array;
  y: Float32Array;
  shape: [number, number, number];
}

export function referenceConvInt8(
  x: Float32Array,
  [h, w, c]: [number, number, number],
  layer: ConvLayer,
  weight: Int8Array, // HWIO
  scale: Float32Array,
  bias: Float32Array,
  rule: ReferenceCode,
): ReferenceConv {
  const { inv, xScale, lo, hi } = codeFor(x, rule);
  // q - zp: the zero point cancels in the sums, and zero padding is 0 here
  const q = Int32Array.from(x, (v) => Math.min(hi, Math.max(lo, roundHalfEven(Math.fround(v * inv)))));
  const { kernel: k, stride: s, padding: p, filters: f, groups } = layer;
  const ho = Math.floor((h + 2 * p - k) / s) + 1;
  const wo = Math.floor((w + 2 * p - k) / s) + 1;
  const cg = c / groups;
  const fg = f / groups;
  const acc = new Int32Array(ho * wo * f);
  const y = new Float32Array(ho * wo * f);
  for (let oy = 0; oy < ho; oy++)
    for (let ox = 0; ox < wo; ox++)
      for (let o = 0; o < f; o++) {
        const g = Math.floor(o / fg);
        let sum = 0;
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const iy = oy * s - p + ky;
            const ix = ox * s - p + kx;
            if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
            for (let ci = 0; ci < cg; ci++) sum += q[(iy * w + ix) * c + g * cg + ci]! * weight[((ky * k + kx) * cg + ci) * f + o]!;
          }
        const at = (oy * wo + ox) * f + o;
        acc[at] = sum;
        const v = Math.fround(Math.fround(Math.fround(sum) * Math.fround(xScale * scale[o]!)) + bias[o]!);
        y[at] = layer.activation === "relu" ? Math.max(0, v) : v;
      }
  return { acc, y, shape: [ho, wo, f] };
}
