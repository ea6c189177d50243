import { describe, expect, it } from "vitest";
import { planInt8Features } from "../../src/engine/features-int8";
import { minMaxCode, roundHalfEven, symmetricCode, type CodeRule } from "../../src/engine/input-code";
import { instantiateFeatureKernels, KERNEL_BUILDS, preferredKernelBuild, relaxedKernelFor } from "../../src/engine/feature-kernels";
import type { Layer } from "../../src/package/manifest";
import { referenceConvInt8, type ReferenceCode } from "../support/conv-int8-reference";
import { mulberry32, TINY_LAYERS } from "../support/tiny-package";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;
const BUILDS = KERNEL_BUILDS;

interface ConvCase {
  input: [number, number, number];
  filters: number;
  kernel: number;
  stride: number;
  padding: number;
  groups: number;
}

// Groups (2, 3, 4), strides 1-4, paddings 0-5, kernels 1 and 11, channel counts that are not multiples of
// 4 or 8, odd widths (tiles of 3 pixels plus a tail), non-square inputs.
const CASES: ConvCase[] = [
  { input: [23, 23, 3], filters: 16, kernel: 11, stride: 4, padding: 2, groups: 1 },
  { input: [13, 13, 8], filters: 12, kernel: 3, stride: 1, padding: 1, groups: 2 },
  { input: [9, 7, 5], filters: 9, kernel: 1, stride: 1, padding: 0, groups: 1 },
  { input: [10, 11, 6], filters: 6, kernel: 5, stride: 2, padding: 2, groups: 3 },
  { input: [6, 6, 16], filters: 32, kernel: 3, stride: 2, padding: 0, groups: 4 },
  { input: [12, 12, 4], filters: 8, kernel: 11, stride: 3, padding: 5, groups: 1 },
  { input: [5, 8, 20], filters: 20, kernel: 2, stride: 1, padding: 1, groups: 2 },
];

function convLayer(name: string, c: ConvCase, activation: "relu" | "none"): ConvLayer {
  return { op: "conv2d", name, filters: c.filters, kernel: c.kernel, stride: c.stride, padding: c.padding, groups: c.groups, activation };
}

function randomWeights(random: () => number, layer: ConvLayer, channels: number) {
  const weight = new Int8Array(layer.kernel * layer.kernel * (channels / layer.groups) * layer.filters).map(
    () => Math.floor(random() * 255) - 127,
  );
  const scale = new Float32Array(layer.filters).map(() => 0.001 + random() * 0.02);
  const bias = new Float32Array(layer.filters).map(() => random() - 0.5);
  return { weight, scale, bias };
}

// The package rules for a signed input, and what the reference calls each
const RULES: [CodeRule, ReferenceCode][] = [
  ["7-bit-per-tensor-min-max", "min-max"],
  ["7-bit-per-tensor-dynamic", "symmetric"],
];

function runFeatures(
  layers: Layer[],
  input: [number, number, number],
  tensors: Map<string, ArrayBufferView>,
  x: Float32Array,
  build: (typeof BUILDS)[number],
  rule: CodeRule,
) {
  const plan = planInt8Features(layers, { height: input[0], width: input[1], channels: input[2] }, rule, build);
  for (const name of plan.tensorNames) {
    const t = tensors.get(name)!;
    plan.destination(name)!.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  return plan.build().run(x);
}

describe("the int8 convolution kernel", () => {
  for (const build of BUILDS) {
    for (const c of CASES) {
      const what = `${c.kernel}x${c.kernel}/${c.stride} pad ${c.padding} groups ${c.groups} on ${c.input.join("x")} -> ${c.filters}`;

      for (const [rule, ref] of RULES) {
        it(`sums int8 products exactly (${build}, ${ref} input, ${what})`, () => {
          const random = mulberry32(c.kernel * 1000 + c.filters);
          const layer = convLayer("conv", c, "none");
          const { weight } = randomWeights(random, layer, c.input[2]);
          // Integer inputs whose code step is 1 quantize to themselves: -63..63 with max|x| = 63 (symmetric),
          // or -40..87, a range of 127 with zero point 40 (min-max). Scale 1 and bias 0 then make the output
          // the int32 sum itself, exact in f32 below 2^24.
          const [low, high] = ref === "symmetric" ? [-63, 63] : [-40, 87];
          const x = new Float32Array(c.input[0] * c.input[1] * c.input[2]).map(() => low + Math.floor(random() * (high - low + 1)));
          [x[0], x[x.length - 1]] = [low, high];
          const scale = new Float32Array(c.filters).fill(1);
          const bias = new Float32Array(c.filters);
          const tensors = new Map<string, ArrayBufferView>([
            ["conv.weight", weight],
            ["conv.scale", scale],
            ["conv.bias", bias],
          ]);
          const ours = runFeatures([layer], c.input, tensors, x, build, rule);
          const reference = referenceConvInt8(x, c.input, layer, weight, scale, bias, ref);
          expect(reference.acc.some((v) => Math.abs(v) > 127 * 127)).toBe(true); // sums of many products, not one
          expect(Array.from(ours)).toEqual(Array.from(reference.acc));
        });

        it(`computes the served arithmetic bit for bit through a signed and an unsigned layer (${build}, ${ref} input, ${what})`, () => {
          const random = mulberry32(c.kernel * 7 + c.filters * 31 + c.groups);
          const first = convLayer("a", c, "relu");
          const a = randomWeights(random, first, c.input[2]);
          const x = new Float32Array(c.input[0] * c.input[1] * c.input[2]).map(() => (random() - 0.4) * 3);
          const refA = referenceConvInt8(x, c.input, first, a.weight, a.scale, a.bias, ref);
          // A 3x3 "same" conv after it: its input is post-ReLU, so it takes the unsigned 0..127 code.
          const second: ConvLayer = {
            op: "conv2d",
            name: "b",
            filters: 8,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 1,
            activation: "none",
          };
          const b = randomWeights(random, second, c.filters);
          const refB = referenceConvInt8(refA.y, refA.shape, second, b.weight, b.scale, b.bias, "unsigned");
          const tensors = new Map<string, ArrayBufferView>([
            ["a.weight", a.weight],
            ["a.scale", a.scale],
            ["a.bias", a.bias],
            ["b.weight", b.weight],
            ["b.scale", b.scale],
            ["b.bias", b.bias],
          ]);
          expect(Array.from(runFeatures([first], c.input, tensors, x, build, rule))).toEqual(Array.from(refA.y));
          expect(Array.from(runFeatures([first, second], c.input, tensors, x, build, rule))).toEqual(Array.from(refB.y));
        });
      }
    }
  }

  it("codes a signed input over its min..max in all 128 codes, 0 exactly, and the older packages' input symmetrically", () => {
    // A normalized Fashion-MNIST image spans (0 - 0.2860) / 0.3530 .. (1 - 0.2860) / 0.3530
    const [lo, hi] = [Math.fround(-0.286 / 0.353), Math.fround(0.714 / 0.353)];
    const code = minMaxCode(lo, hi);
    expect(code.zp).toBe(36); // 0.8102 / (2.8329 / 127) = 36.3
    expect([code.lo + code.zp, code.hi + code.zp]).toEqual([0, 127]);
    expect(code.xScale).toBe(Math.fround(Math.fround(hi - lo) / 127));
    expect(roundHalfEven(Math.fround(hi * code.inv)) + code.zp).toBe(127);
    expect(roundHalfEven(Math.fround(lo * code.inv)) + code.zp).toBe(0);
    expect(code.xScale).toBeLessThan(0.7 * symmetricCode(hi).xScale); // finer steps than max|x| / 63
    // after a ReLU the range is [0, max]: zero point 0, step max / 127
    expect(minMaxCode(0, 5)).toEqual({ inv: Math.fround(127 / 5), xScale: Math.fround(5 / 127), lo: -0, hi: 127, zp: 0 });
    expect(minMaxCode(0, 0)).toEqual({ inv: 0, xScale: 0, lo: 0, hi: 127, zp: 0 });
    // all negative: 0 is the top code
    expect(minMaxCode(-3, -1).zp).toBe(127);
  });

  it("picks the relaxed inner product from how the runtime computes the relaxed dot outside its defined range", () => {
    // 127 x 255 four times: exact with VNNI's 32-bit dot, 2 x 32767 from pmaddubsw's saturating pairs, -508
    // where the second operand is taken as signed (ARM)
    const probe = instantiateFeatureKernels("relaxed-simd").relaxedDotProbe(127, 255);
    expect([4 * 127 * 255, 2 * 32767, -4 * 127]).toContain(probe);
    expect(preferredKernelBuild()).toBe(relaxedKernelFor(probe)); // workerd has relaxed SIMD
    expect([relaxedKernelFor(65534), relaxedKernelFor(129540), relaxedKernelFor(-508)]).toEqual([
      "relaxed-simd-madd",
      "relaxed-simd",
      "relaxed-simd",
    ]);
  });

  it("gives identical answers in its relaxed-SIMD (both inner products) and SIMD128 builds, LRN and pooling included", () => {
    const random = mulberry32(5);
    const layers = TINY_LAYERS.slice(
      0,
      TINY_LAYERS.findIndex((l) => l.op === "flatten"),
    );
    const tensors = new Map<string, ArrayBufferView>();
    let channels = 3;
    for (const layer of layers) {
      if (layer.op !== "conv2d") continue;
      const t = randomWeights(random, layer, channels);
      tensors.set(`${layer.name}.weight`, t.weight).set(`${layer.name}.scale`, t.scale).set(`${layer.name}.bias`, t.bias);
      channels = layer.filters;
    }
    const x = new Float32Array(24 * 24 * 3).map(() => random() * 2 - 1);
    for (const [rule] of RULES) {
      const [relaxed, madd, simd128] = BUILDS.map((build) => runFeatures(layers, [24, 24, 3], tensors, x, build, rule));
      expect(relaxed!.some((v) => v !== 0)).toBe(true);
      expect(Array.from(madd!)).toEqual(Array.from(relaxed!));
      expect(Array.from(simd128!)).toEqual(Array.from(relaxed!));
    }
  });
});
