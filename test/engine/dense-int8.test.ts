import { describe, expect, it } from "vitest";
import { activationQmax, createDenseStack } from "../../src/engine/dense-int8";
import { mulberry32 } from "../support/tiny-package";

/** The served arithmetic of docs/model-package.md in JS: integer sums exact, each float step rounded to f32 as the kernel rounds it. */
function servedDense(x: Float32Array, w: Int8Array, scale: Float32Array, bias: Float32Array, k: number, n: number): Float32Array {
  const qmax = activationQmax(k);
  const m = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  const inv = Math.fround(qmax / m);
  const q = Array.from(x, (v) => roundHalfEven(Math.fround(v * inv)));
  const y = new Float32Array(n);
  const xScale = Math.fround(m / qmax);
  for (let o = 0; o < n; o++) {
    let acc = 0;
    for (let i = 0; i < k; i++) acc += q[i]! * w[o * k + i]!;
    y[o] = Math.fround(Math.fround(acc) * Math.fround(xScale * scale[o]!)) + bias[o]!;
  }
  return y;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Random int8 weights, scales and biases for the stack's one layer "fc", written where the kernel reads them. */
function fillRandomLayer(stack: ReturnType<typeof createDenseStack>, k: number, n: number, random: () => number) {
  const w = new Int8Array(k * n).map(() => Math.floor(random() * 255) - 127);
  const scale = new Float32Array(n).map(() => 0.001 + random() * 0.01);
  const bias = new Float32Array(n).map(() => random() - 0.5);
  stack.destination("fc.weight")!.set(new Uint8Array(w.buffer));
  stack.destination("fc.scale")!.set(new Uint8Array(scale.buffer));
  stack.destination("fc.bias")!.set(new Uint8Array(bias.buffer));
  return { w, scale, bias };
}

describe("the int8 dense kernel", () => {
  for (const [k, n] of [
    [256, 37],
    [9216, 8],
    [35, 5],
  ] as const) {
    it(`computes the served int8 arithmetic exactly for ${k} inputs and ${n} outputs`, () => {
      const random = mulberry32(k * n);
      const stack = createDenseStack([{ name: "fc", inFeatures: k, units: n, relu: false }]);
      const { w, scale, bias } = fillRandomLayer(stack, k, n, random);
      const x = new Float32Array(k).map(() => (random() - 0.3) * 3);
      const ours = stack.run(x, 1);
      const expected = servedDense(x, w, scale, bias, k, n);
      expect([...ours]).toEqual([...expected]);
    });
  }

  // 300 inputs leave a tail after the 16-wide SIMD steps and 7 outputs an odd row after the pairs: the
  // four-row kernel's every path, for batch sizes that take it fully, with a blank fourth row, or not at all.
  it("gives every row of a batch of 1 to 9 exactly its answer alone, which is the served arithmetic", () => {
    const [k, n] = [300, 7];
    const random = mulberry32(42);
    const stack = createDenseStack([{ name: "fc", inFeatures: k, units: n, relu: true }]);
    const { w, scale, bias } = fillRandomLayer(stack, k, n, random);
    const rows = Array.from({ length: 9 }, (_, r) => new Float32Array(k).map(() => (random() - 0.4) * (r + 1)));
    const alone = rows.map((x) => [...stack.run(x, 1)]);
    rows.forEach((x, r) => {
      const expected = servedDense(x, w, scale, bias, k, n).map((v) => Math.max(0, v));
      expect(alone[r]).toEqual([...expected]);
    });
    for (let b = 1; b <= 9; b++) {
      const packed = new Float32Array(b * k);
      for (const [r, x] of rows.slice(0, b).entries()) packed.set(x, r * k);
      const out = stack.run(packed, b);
      for (let r = 0; r < b; r++) expect([...out.subarray(r * n, (r + 1) * n)]).toEqual(alone[r]);
    }
  });

  it("keeps the int32 sum from overflowing at AlexNet's widest layer", () => {
    expect(activationQmax(9216)).toBe(1834); // floor((2^31-1) / (127 * 9216))
    expect(activationQmax(9216) * 127 * 9216).toBeLessThanOrEqual(2 ** 31 - 1);
    expect(activationQmax(16)).toBe(32767);
  });

  it("returns the bias for an all-zero input and applies ReLU", () => {
    const stack = createDenseStack([{ name: "fc", inFeatures: 32, units: 4, relu: true }]);
    stack.destination("fc.scale")!.set(new Uint8Array(new Float32Array([1, 1, 1, 1]).buffer));
    stack.destination("fc.bias")!.set(new Uint8Array(new Float32Array([0.5, -0.5, 2, -2]).buffer));
    expect([...stack.run(new Float32Array(32), 1)]).toEqual([0.5, 0, 2, 0]);
  });

  it("refuses layers whose sizes do not chain", () => {
    expect(() =>
      createDenseStack([
        { name: "a", inFeatures: 16, units: 8, relu: true },
        { name: "b", inFeatures: 9, units: 2, relu: false },
      ]),
    ).toThrow(/takes 9 inputs/);
  });
});
