/**
 * The feature layers (conv2d, lrn, maxpool up to flatten) on our int8 WebAssembly SIMD kernels
 * (kernels/conv-int8.ts, maxpool.ts, lrn.ts, built into one module so activations never leave its memory).
 *
 * One instance per network, its memory laid out once at build: per conv layer the packed int8 weights and
 * padded rows of weight sums, scales and biases; then two f32 activation buffers (ping-pong), the
 * quantized input buffer and the LRN scratch. The served arithmetic is docs/model-package.md's
 * "int8 convolutions": each conv codes its input per tensor in 7 bits (input-code.ts): after a ReLU over
 * [0, max|x|], max|x| known from the previous conv's fused epilogue when nothing ran in between; a signed
 * input (the image) over its min..max, or, for packages written before, symmetric around zero point 64.
 */
import type { InputShape, Layer } from "../package/manifest";
import { convGroup, instantiateFeatureKernels, preferredKernelBuild, type KernelBuild } from "./feature-kernels";
import { minMaxCode, symmetricCode, type CodeRule } from "./input-code";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;

export interface FeaturesPlan {
  readonly tensorNames: readonly string[];
  /** Staging for a conv tensor's bytes (weights are repacked at build; scales and biases are copied). */
  destination(tensor: string): Uint8Array | undefined;
  build(): Features;
  /** Values per example after the last feature layer (what flatten hands the dense layers). */
  readonly outValues: number;
  /** Bytes staged in JS until build packs them. */
  readonly stagedBytes: number;
}

/** Called after each feature layer runs, with its index in the layer list (for profiling: src/engine/profile.ts). */
export type LayerMark = (layerIndex: number) => void;

export interface Features {
  /**
   * Runs the feature layers on one NHWC example; returns a fresh array of `outValues` values. `mark`, when
   * given, is called after each layer: the profiler times the gaps between calls.
   */
  run(input: Float32Array, mark?: LayerMark): Float32Array;
  readonly memoryBytes: number;
  readonly build: KernelBuild;
  /** Runs every layer once on zeros: V8 runs new wasm in its baseline tier first. */
  warmUp(): void;
}

interface ConvPlan {
  layer: ConvLayer;
  h: number;
  w: number;
  c: number;
  ho: number;
  wo: number;
  cg: number;
  cg4: number;
  fg: number;
  fpad: number;
  /** Its input may be negative (not after a ReLU): the package's rule decides its code. */
  signedInput: boolean;
  staged: { weight: Uint8Array; scale: Uint8Array; bias: Uint8Array };
  at: { weight: number; wsum: number; scale: number; bias: number };
}

type Step = { index: number } & (
  | { op: "conv"; conv: ConvPlan }
  | { op: "lrn"; layer: Extract<Layer, { op: "lrn" }>; pixels: number; c: number }
  | { op: "maxpool"; layer: Extract<Layer, { op: "maxpool" }>; w: number; c: number; ho: number; wo: number }
);

const WASM_PAGE = 65536;
const align16 = (n: number) => (n + 15) & ~15;
const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/**
 * Plans the layers before `flatten`. Shapes were checked by the caller (network.ts); `rule` is the
 * package's `quantization.conv_activations`; `build` picks the kernel build (tests pass one to compare both).
 */
export function planInt8Features(
  layers: readonly Layer[],
  input: InputShape,
  rule: CodeRule,
  build: KernelBuild = preferredKernelBuild(),
): FeaturesPlan {
  let [h, w, c] = [input.height, input.width, input.channels];
  let nonNegative = false; // the input image is signed; a ReLU makes it >= 0 and LRN and pooling keep it so
  const steps: Step[] = [];
  const staged = new Map<string, Uint8Array>();
  let largestQuantized = 0;
  let lrnScratch = 0;
  let largestWeight = 0;
  // Conv and pool steps write alternately into two buffers (LRN works in place): each is sized for what lands
  // in it, not both for the largest activation, and the larger one also stages each conv's HWIO weights while
  // they are packed. At 224: A takes the input (0.6 MB), B conv1's output (1.2 MB) and the staging of conv4's
  // 1.3 MB of weights, 1.9 MB for the two where sizing both for the largest took 2.5 MB.
  const bufferValues = [h * w * c, 0];
  let into = 1;
  const written = (values: number) => {
    bufferValues[into] = Math.max(bufferValues[into]!, values);
    into = 1 - into;
  };
  for (const [index, layer] of layers.entries()) {
    if (layer.op === "conv2d") {
      const cg = c / layer.groups;
      const cg4 = roundUp(cg, 4);
      const fg = layer.filters / layer.groups;
      const ho = Math.floor((h + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      const wo = Math.floor((w + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      const weight = new Uint8Array(layer.kernel * layer.kernel * cg * layer.filters);
      const conv: ConvPlan = {
        layer,
        h,
        w,
        c,
        ho,
        wo,
        cg,
        cg4,
        fg,
        fpad: roundUp(fg, 8),
        signedInput: !nonNegative,
        staged: { weight, scale: new Uint8Array(layer.filters * 4), bias: new Uint8Array(layer.filters * 4) },
        at: { weight: 0, wsum: 0, scale: 0, bias: 0 },
      };
      staged.set(`${layer.name}.weight`, conv.staged.weight);
      staged.set(`${layer.name}.scale`, conv.staged.scale);
      staged.set(`${layer.name}.bias`, conv.staged.bias);
      largestWeight = Math.max(largestWeight, weight.byteLength);
      largestQuantized = Math.max(largestQuantized, layer.groups * (h + 2 * layer.padding) * (w + 2 * layer.padding) * cg4);
      steps.push({ index, op: "conv", conv });
      [h, w, c] = [ho, wo, layer.filters];
      written(h * w * c);
      nonNegative = layer.activation === "relu";
    } else if (layer.op === "lrn") {
      steps.push({ index, op: "lrn", layer, pixels: h * w, c });
      lrnScratch = Math.max(lrnScratch, (c + layer.size + 4) * 4);
    } else if (layer.op === "maxpool") {
      const ho = Math.floor((h - layer.window) / layer.stride) + 1;
      const wo = Math.floor((w - layer.window) / layer.stride) + 1;
      steps.push({ index, op: "maxpool", layer, w, c, ho, wo });
      [h, w] = [ho, wo];
      written(h * w * c);
    }
  }
  const outValues = h * w * c;

  return {
    tensorNames: [...staged.keys()],
    outValues,
    stagedBytes: [...staged.values()].reduce((sum, b) => sum + b.byteLength, 0),
    destination: (tensor) => staged.get(tensor),
    build() {
      const kernels = instantiateFeatureKernels(build);
      const madd = build === "relaxed-simd-madd";
      const act = kernels.activationBytes();
      let top = align16(kernels.memory.buffer.byteLength);
      const take = (bytes: number) => {
        const at = top;
        top = align16(top + bytes);
        return at;
      };
      const convs = steps.flatMap((s) => (s.op === "conv" ? [s.conv] : []));
      for (const conv of convs) {
        const { layer, cg4, fpad } = conv;
        const rows = layer.groups * fpad * 4;
        conv.at = {
          weight: take(layer.groups * fpad * layer.kernel * layer.kernel * cg4),
          wsum: take(rows),
          scale: take(rows),
          bias: take(rows),
        };
      }
      const stageInB = bufferValues[1]! >= bufferValues[0]!;
      const bufferA = take(stageInB ? bufferValues[0]! * 4 : Math.max(bufferValues[0]! * 4, largestWeight));
      const bufferB = take(stageInB ? Math.max(bufferValues[1]! * 4, largestWeight) : bufferValues[1]! * 4);
      const staging = stageInB ? bufferB : bufferA;
      const quantized = take(largestQuantized * act);
      const squares = take(lrnScratch);
      const grow = Math.ceil((top - kernels.memory.buffer.byteLength) / WASM_PAGE);
      if (grow > 0) kernels.memory.grow(grow); // once: views made after this stay valid
      const memory = kernels.memory.buffer;

      for (const conv of convs) {
        const { layer, cg, cg4, fg, fpad } = conv;
        new Uint8Array(memory, staging, conv.staged.weight.byteLength).set(conv.staged.weight);
        kernels.packWeights(staging, conv.at.weight, conv.at.wsum, layer.kernel, cg, cg4, layer.filters, layer.groups, fpad);
        const scale = new Float32Array(conv.staged.scale.buffer, conv.staged.scale.byteOffset, layer.filters);
        const bias = new Float32Array(conv.staged.bias.buffer, conv.staged.bias.byteOffset, layer.filters);
        const scaleRows = new Float32Array(memory, conv.at.scale, layer.groups * fpad);
        const biasRows = new Float32Array(memory, conv.at.bias, layer.groups * fpad);
        for (let g = 0; g < layer.groups; g++) {
          scaleRows.set(scale.subarray(g * fg, (g + 1) * fg), g * fpad);
          biasRows.set(bias.subarray(g * fg, (g + 1) * fg), g * fpad);
        }
      }
      staged.clear(); // packed now: let the staged bytes go
      for (const conv of convs) conv.staged = { weight: EMPTY, scale: EMPTY, bias: EMPTY };

      const convolve = (conv: ConvPlan, from: number, to: number, knownMax: number | undefined): number => {
        const { layer, h, w, c, ho, wo, cg4, fg, fpad } = conv;
        const n = h * w * c;
        const code = !conv.signedInput
          ? minMaxCode(0, knownMax ?? kernels.maxAbs(from, n))
          : rule === "7-bit-per-tensor-min-max"
            ? minMaxCode(kernels.minValue(from, n), kernels.maxValue(from, n))
            : symmetricCode(kernels.maxAbs(from, n));
        const { inv, xScale } = code;
        kernels.quantizeInput(from, quantized, h, w, c, layer.groups, cg4, layer.padding, inv, code.lo, code.hi, code.zp);
        const hp = h + 2 * layer.padding;
        const wp = w + 2 * layer.padding;
        const blockRow = layer.kernel * layer.kernel * cg4 * fpad; // packed bytes per group
        let outMax = 0;
        for (let g = 0; g < layer.groups; g++) {
          const groupMax = convGroup(kernels, {
            src: quantized + g * hp * wp * cg4 * act,
            weights: conv.at.weight + g * blockRow,
            weightSums: conv.at.wsum + g * fpad * 4,
            scale: conv.at.scale + g * fpad * 4,
            bias: conv.at.bias + g * fpad * 4,
            dst: to + g * fg * 4,
            outHeight: ho,
            outWidth: wo,
            wp,
            cg4,
            kernel: layer.kernel,
            stride: layer.stride,
            filters: fg,
            filtersPadded: fpad,
            outChannels: layer.filters,
            xScale,
            zp: code.zp,
            relu: layer.activation === "relu",
            madd,
          });
          outMax = Math.max(outMax, groupMax);
        }
        return outMax;
      };

      const run = (data: Float32Array, mark?: LayerMark): Float32Array => {
        new Float32Array(memory, bufferA, data.length).set(data);
        let [from, to] = [bufferA, bufferB];
        let knownMax: number | undefined; // max|x| of `from`, when the last step computed it
        for (const step of steps) {
          if (step.op === "conv") {
            knownMax = convolve(step.conv, from, to, knownMax);
            [from, to] = [to, from];
          } else if (step.op === "lrn") {
            const { size, k, alpha, beta } = step.layer;
            kernels.lrn(from, step.pixels, step.c, (size - 1) / 2, k, alpha, beta, squares);
            knownMax = undefined;
          } else {
            kernels.maxpool(from, to, step.w, step.c, step.layer.window, step.layer.stride, step.ho, step.wo);
            [from, to] = [to, from];
            knownMax = undefined;
          }
          mark?.(step.index);
        }
        return new Float32Array(memory, from, outValues).slice();
      };
      return {
        build,
        memoryBytes: memory.byteLength,
        run,
        warmUp: () => void run(new Float32Array(input.height * input.width * input.channels)),
      };
    },
  };
}

const EMPTY = new Uint8Array(0);
