/**
 * The two builds of our convolution module (kernels/conv-int8.ts + maxpool.ts + lrn.ts), compiled from
 * one source by `npm run build:wasm`, and the choice between them. The relaxed-SIMD build uses
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s` (one instruction on CPUs with VNNI); the SIMD128 build runs on
 * any runtime with WebAssembly SIMD. Both compute the same exact integers (test/engine/conv-int8.test.ts).
 *
 * Workers cannot compile WebAssembly from bytes, but they may validate bytes: a 48-byte module that uses
 * the relaxed dot tells whether this runtime accepts relaxed SIMD, once, before the module is chosen.
 *
 * The relaxed build holds two inner products (kernels/conv-int8.ts): the fused relaxed dot-add, one VNNI
 * instruction where V8 has AVX-VNNI, and "madd" (pmaddubsw, pmaddwd, add), which V8 without AVX-VNNI would
 * otherwise run as the same three instructions plus two that rebuild a constant on every use (28% slower
 * over AlexNet-224's convolutions, measured on an AMD EPYC without AVX-VNNI; docs/platform-notes.md). Which
 * one V8 emits shows in the relaxed dot's result outside its defined range, which `relaxedDotProbe` reads
 * once: no clock is needed, which matters because a deployed Worker's clock stands still during compute.
 */
import relaxedModule from "../../build/kernels/features-relaxed.wasm";
import simd128Module from "../../build/kernels/features-simd128.wasm";

/** A wasm build and, for the relaxed one, its inner product: "relaxed-simd" is the fused relaxed dot-add. */
export type KernelBuild = "relaxed-simd" | "relaxed-simd-madd" | "simd128";
export const KERNEL_BUILDS: readonly KernelBuild[] = ["relaxed-simd", "relaxed-simd-madd", "simd128"];

/** What `relaxedDotProbe(127, 255)` returns where V8 lowers the relaxed dot to pmaddubsw's saturating pairs. */
const PMADDUBSW_SATURATED = 2 * 32767;

export interface FeatureKernels {
  memory: WebAssembly.Memory;
  activationBytes(): number;
  maxAbs(x: number, n: number): number;
  minValue(x: number, n: number): number;
  maxValue(x: number, n: number): number;
  quantizeInput(
    x: number,
    dst: number,
    h: number,
    w: number,
    c: number,
    groups: number,
    cg4: number,
    pad: number,
    inv: number,
    lo: number,
    hi: number,
    zp: number,
  ): void;
  packWeights(src: number, dst: number, wsum: number, k: number, cg: number, cg4: number, f: number, groups: number, fpad: number): void;
  convGroup(
    src: number,
    wpk: number,
    wsum: number,
    scale: number,
    bias: number,
    dst: number,
    ho: number,
    wo: number,
    wp: number,
    cg4: number,
    k: number,
    stride: number,
    fg: number,
    fpad: number,
    fOut: number,
    xScale: number,
    zp: number,
    relu: number,
    madd: number,
    one: number,
  ): number;
  relaxedDotProbe(a: number, b: number): number;
  maxpool(x: number, out: number, w: number, c: number, window: number, stride: number, ho: number, wo: number): void;
  lrn(x: number, pixels: number, channels: number, radius: number, k: number, alpha: number, beta: number, squares: number): void;
}

/**
 * One group of one convolution, by name: kernels/conv-int8.ts's `convGroup` takes these 20 values as
 * positional parameters (wasm calls have no structs), and `convGroup` below is the one place that orders them.
 * Addresses are byte offsets in the kernels' memory.
 */
export interface ConvGroupCall {
  /** The quantized, zero-padded NHWC input of this group; `wp` is its padded width. */
  src: number;
  /** Packed int8 weights, their per-filter sums (for the zero point), and per-filter scales and biases. */
  weights: number;
  weightSums: number;
  scale: number;
  bias: number;
  /** Where this group's first output channel goes; rows are `outChannels` floats apart. */
  dst: number;
  outHeight: number;
  outWidth: number;
  wp: number;
  /** Input channels of the group, padded to 4; kernel side; stride. */
  cg4: number;
  kernel: number;
  stride: number;
  /** Filters of the group, and the same padded to 8 as the weights are packed. */
  filters: number;
  filtersPadded: number;
  outChannels: number;
  /** The input's quantization step and zero point. */
  xScale: number;
  zp: number;
  relu: boolean;
  /** The relaxed build's inner product: pmaddubsw + pmaddwd ("madd") rather than the fused relaxed dot. */
  madd: boolean;
}

/** Runs `convGroup`; returns the group's largest output, which the next layer's quantization needs. */
export function convGroup(kernels: FeatureKernels, call: ConvGroupCall): number {
  const c = call;
  // The trailing 1 is the i16 ones vector's lane value, passed in because V8 rebuilds a literal splat on every use.
  return kernels.convGroup(
    c.src,
    c.weights,
    c.weightSums,
    c.scale,
    c.bias,
    c.dst,
    c.outHeight,
    c.outWidth,
    c.wp,
    c.cg4,
    c.kernel,
    c.stride,
    c.filters,
    c.filtersPadded,
    c.outChannels,
    c.xScale,
    c.zp,
    c.relu ? 1 : 0,
    c.madd ? 1 : 0,
    1,
  );
}

/** (func (param v128 v128 v128) (result v128) (i32x4.relaxed_dot_i8x16_i7x16_add_s ...)), from asc. */
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 7, 9, 1, 5, 112, 114, 111, 98, 101, 0, 0, 10, 13, 1, 11,
  0, 32, 0, 32, 1, 32, 2, 253, 147, 2, 11,
]);

let chosen: KernelBuild | undefined;

/** The relaxed inner product for a runtime whose relaxed dot gives `probe` for (127, 255). */
export function relaxedKernelFor(probe: number): KernelBuild {
  return probe === PMADDUBSW_SATURATED ? "relaxed-simd-madd" : "relaxed-simd";
}

/** The build this runtime runs best: relaxed SIMD where it validates (with the inner product its CPU runs best), else SIMD128. */
export function preferredKernelBuild(): KernelBuild {
  if (chosen) return chosen;
  if (!WebAssembly.validate(RELAXED_PROBE)) {
    chosen = "simd128";
  } else {
    const probe = new WebAssembly.Instance(relaxedModule, {}).exports as unknown as FeatureKernels;
    chosen = relaxedKernelFor(probe.relaxedDotProbe(127, 255));
  }
  return chosen;
}

/** Makes networks built from now on use `build` (the benchmark and tests measure every build this way). */
export function useKernelBuild(build: KernelBuild): void {
  if (build !== "simd128" && !WebAssembly.validate(RELAXED_PROBE)) throw new Error("this runtime refuses relaxed SIMD");
  chosen = build;
}

/** A fresh instance (its own linear memory) of the given build. */
export function instantiateFeatureKernels(build: KernelBuild = preferredKernelBuild()): FeatureKernels {
  const module = build === "simd128" ? simd128Module : relaxedModule;
  return new WebAssembly.Instance(module, {}).exports as unknown as FeatureKernels;
}
