/**
 * The served int8 convolution of docs/model-package.md, computed in plain JS: integer sums exactly,
 * every fp32 step rounded with Math.fround in the order the kernel uses. The kernel must match it bit
 * for bit.
 */
import type { Layer } from "../../src/model/manifest";
import type { ActivationCode } from "../../src/engine/features-int8";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;

export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
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
  code: ActivationCode,
): ReferenceConv {
  const m = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  const inv = m > 0 ? Math.fround(code.qmax / m) : 0;
  const q = Int32Array.from(x, (v) => Math.min(code.qmax, Math.max(-code.qmax, roundHalfEven(Math.fround(v * inv)))));
  const xScale = Math.fround(m / code.qmax);
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
