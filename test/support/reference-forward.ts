/**
 * An independent, deliberately naive fp32 forward pass over NHWC arrays, following the layer semantics
 * of docs/model-package.md line by line. The engine is checked against it.
 */
import type { InputShape, Layer } from "../../src/package/manifest";
import type { FloatWeights } from "./tiny-package";

export function referenceForward(layers: Layer[], weights: FloatWeights, input: InputShape, x: Float32Array): Float32Array {
  let h = input.height;
  let w = input.width;
  let c = input.channels;
  let a = Float64Array.from(x);
  for (const layer of layers) {
    if (layer.op === "conv2d") {
      const { weight, bias } = weights[layer.name]!;
      const { kernel: k, stride: s, padding: p, filters: f, groups: g } = layer;
      const oh = Math.floor((h + 2 * p - k) / s) + 1;
      const ow = Math.floor((w + 2 * p - k) / s) + 1;
      const cg = c / g;
      const fg = f / g;
      const out = new Float64Array(oh * ow * f);
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++)
          for (let o = 0; o < f; o++) {
            const group = Math.floor(o / fg);
            let sum = bias[o]!;
            for (let ky = 0; ky < k; ky++)
              for (let kx = 0; kx < k; kx++) {
                const iy = y * s - p + ky;
                const ix = xx * s - p + kx;
                if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
                for (let ci = 0; ci < cg; ci++) {
                  sum += a[(iy * w + ix) * c + group * cg + ci]! * weight[((ky * k + kx) * cg + ci) * f + o]!;
                }
              }
            out[(y * ow + xx) * f + o] = layer.activation === "relu" ? Math.max(0, sum) : sum;
          }
      a = out;
      h = oh;
      w = ow;
      c = f;
    } else if (layer.op === "lrn") {
      const r = (layer.size - 1) / 2;
      const out = new Float64Array(a.length);
      for (let i = 0; i < h * w; i++)
        for (let ch = 0; ch < c; ch++) {
          let sq = 0;
          for (let j = Math.max(0, ch - r); j <= Math.min(c - 1, ch + r); j++) sq += a[i * c + j]! ** 2;
          out[i * c + ch] = a[i * c + ch]! / (layer.k + layer.alpha * sq) ** layer.beta;
        }
      a = out;
    } else if (layer.op === "maxpool") {
      const oh = Math.floor((h - layer.window) / layer.stride) + 1;
      const ow = Math.floor((w - layer.window) / layer.stride) + 1;
      const out = new Float64Array(oh * ow * c).fill(-Infinity);
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++)
          for (let ky = 0; ky < layer.window; ky++)
            for (let kx = 0; kx < layer.window; kx++)
              for (let ch = 0; ch < c; ch++) {
                const v = a[((y * layer.stride + ky) * w + xx * layer.stride + kx) * c + ch]!;
                const o = (y * ow + xx) * c + ch;
                if (v > out[o]!) out[o] = v;
              }
      a = out;
      h = oh;
      w = ow;
    } else if (layer.op === "flatten") {
      c = a.length;
      h = w = 1;
    } else if (layer.op === "dense") {
      const { weight, bias } = weights[layer.name]!;
      const out = new Float64Array(layer.units);
      for (let o = 0; o < layer.units; o++) {
        let sum = bias[o]!;
        for (let i = 0; i < a.length; i++) sum += a[i]! * weight[o * a.length + i]!;
        out[o] = layer.activation === "relu" ? Math.max(0, sum) : sum;
      }
      a = out;
    } else if (layer.op === "softmax") {
      const max = Math.max(...a);
      const e = a.map((v) => Math.exp(v - max));
      const sum = e.reduce((s, v) => s + v, 0);
      a = e.map((v) => v / sum);
    }
  }
  return Float32Array.from(a);
}
