/**
 * Local response normalisation on our WebAssembly SIMD kernel (kernels/lrn.ts) rather than tfjs's,
 * which took ~12% of an AlexNet forward pass. One instance per network, its memory sized once for the
 * largest activation any LRN layer of that network sees.
 */
import lrnModule from "../../build/kernels/lrn.wasm";

interface LrnExports {
  memory: WebAssembly.Memory;
  lrn(x: number, pixels: number, channels: number, radius: number, k: number, alpha: number, beta: number, squares: number): void;
}

export interface LrnParams {
  size: number;
  alpha: number;
  beta: number;
  k: number;
}

export interface LrnKernel {
  /** Normalises `values` (pixels x channels, NHWC) into a new array. */
  run(values: Float32Array, channels: number, params: LrnParams): Float32Array;
  readonly memoryBytes: number;
}

export function createLrnKernel(maxValues: number, maxChannels: number, maxSize: number): LrnKernel {
  const exports = new WebAssembly.Instance(lrnModule, {}).exports as unknown as LrnExports;
  const base = (exports.memory.buffer.byteLength + 15) & ~15;
  const squares = base + maxValues * 4;
  const needed = squares + (maxChannels + maxSize + 4) * 4;
  const pages = Math.ceil((needed - exports.memory.buffer.byteLength) / 65536);
  if (pages > 0) exports.memory.grow(pages);
  return {
    memoryBytes: exports.memory.buffer.byteLength,
    run(values, channels, { size, alpha, beta, k }) {
      if (values.length > maxValues || channels > maxChannels || size > maxSize) throw new Error("LRN input larger than planned");
      const view = new Float32Array(exports.memory.buffer, base, values.length);
      view.set(values);
      exports.lrn(base, values.length / channels, channels, (size - 1) / 2, k, alpha, beta, squares);
      return view.slice();
    },
  };
}
