/**
 * The dense layers of a network, run by our int8 WebAssembly SIMD kernel (kernels/dense-int8.ts).
 *
 * Each model gets its own kernel instance, hence its own linear memory, laid out once at load:
 * per layer int8 weights [units][in] + f32 scales + f32 biases, then scratch for one activation row.
 * Weights stream from R2 straight into that memory (see `destination`), so no JS copy of the 56 MiB of
 * AlexNet's dense weights ever exists. Dropping the instance releases the memory.
 */
import kernelModule from "../../build/kernels/dense-int8.wasm";

export interface DenseShape {
  name: string;
  inFeatures: number;
  units: number;
  relu: boolean;
}

export interface DenseStack {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Bytes of `${name}.weight|scale|bias` in kernel memory, for the weights stream to fill. */
  destination(tensor: string): Uint8Array | undefined;
  /** Runs every layer on `batch` rows of `inFeatures` values; returns batch x outFeatures values. */
  run(input: Float32Array, batch: number): Float32Array;
  /** Size of the kernel's linear memory. */
  readonly memoryBytes: number;
}

interface KernelExports {
  memory: WebAssembly.Memory;
  quantizeRow(x: number, q: number, k: number, qmax: number): number;
  denseRows(q: number, w: number, scale: number, bias: number, y: number, k: number, n: number, xScale: number, relu: number): void;
}

/**
 * Largest int16 activation magnitude for which sum(q_i * w_i) over k terms cannot overflow int32
 * (|w| <= 127). 9216 inputs (AlexNet fc6) give 1834, i.e. ~11-bit activations; small layers get 16 bits.
 */
export function activationQmax(k: number): number {
  return Math.min(32767, Math.floor(2147483647 / (127 * k)));
}

const WASM_PAGE = 65536;
const align16 = (n: number) => (n + 15) & ~15;

export function createDenseStack(shapes: readonly DenseShape[]): DenseStack {
  if (shapes.length === 0) throw new Error("a dense stack needs at least one layer");
  shapes.forEach((s, i) => {
    const previous = shapes[i - 1];
    if (previous && previous.units !== s.inFeatures) {
      throw new Error(`dense layer ${s.name} takes ${s.inFeatures} inputs but ${previous.name} gives ${previous.units}`);
    }
  });

  const instance = new WebAssembly.Instance(kernelModule, {});
  const kernel = instance.exports as unknown as KernelExports;

  // Lay out memory: weights, scales and biases of each layer, then two ping-pong activation rows and
  // one int16 row. Offsets are 16-byte aligned for v128 loads.
  let top = align16(kernel.memory.buffer.byteLength);
  const take = (bytes: number) => {
    const at = top;
    top = align16(top + bytes);
    return at;
  };
  const regions = new Map<string, { offset: number; bytes: number }>();
  const layers = shapes.map((s) => {
    const weight = take(s.units * s.inFeatures);
    const scale = take(s.units * 4);
    const bias = take(s.units * 4);
    regions.set(`${s.name}.weight`, { offset: weight, bytes: s.units * s.inFeatures });
    regions.set(`${s.name}.scale`, { offset: scale, bytes: s.units * 4 });
    regions.set(`${s.name}.bias`, { offset: bias, bytes: s.units * 4 });
    return { ...s, weight, scale, bias, qmax: activationQmax(s.inFeatures) };
  });
  const widest = Math.max(...shapes.map((s) => Math.max(s.inFeatures, s.units)));
  const rowA = take(widest * 4);
  const rowB = take(widest * 4);
  const rowQ = take(widest * 2);

  const grow = Math.ceil((top - kernel.memory.buffer.byteLength) / WASM_PAGE);
  if (grow > 0) kernel.memory.grow(grow); // once: views made after this stay valid

  const first = shapes[0]!;
  const last = shapes[shapes.length - 1]!;
  const memory = kernel.memory.buffer;

  return {
    inFeatures: first.inFeatures,
    outFeatures: last.units,
    memoryBytes: memory.byteLength,
    destination(tensor) {
      const region = regions.get(tensor);
      return region && new Uint8Array(memory, region.offset, region.bytes);
    },
    run(input, batch) {
      if (input.length !== batch * first.inFeatures) {
        throw new Error(`dense input has ${input.length} values, expected ${batch} x ${first.inFeatures}`);
      }
      const output = new Float32Array(batch * last.units);
      for (let row = 0; row < batch; row++) {
        new Float32Array(memory, rowA, first.inFeatures).set(input.subarray(row * first.inFeatures, (row + 1) * first.inFeatures));
        let from = rowA;
        let to = rowB;
        for (const layer of layers) {
          const maxAbs = kernel.quantizeRow(from, rowQ, layer.inFeatures, layer.qmax);
          kernel.denseRows(rowQ, layer.weight, layer.scale, layer.bias, to, layer.inFeatures, layer.units, maxAbs / layer.qmax, layer.relu ? 1 : 0);
          [from, to] = [to, from];
        }
        output.set(new Float32Array(memory, from, last.units), row * last.units);
      }
      return output;
    },
  };
}
