/**
 * The dense layers of a network, run by our int8 WebAssembly SIMD kernel (kernels/dense-int8.ts).
 *
 * Each model gets its own kernel instance, hence its own linear memory, laid out once at load:
 * per layer int8 weights [units][in] + f32 scales + f32 biases, then scratch for DENSE_BATCH activation rows.
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
  /**
   * Runs every layer on `batch` rows of `inFeatures` values; returns batch x outFeatures values. Rows go
   * through DENSE_BATCH at a time; the answers are the same, bit for bit, as one row at a time.
   */
  run(input: Float32Array, batch: number): Float32Array;
  /** Size of the kernel's linear memory. */
  readonly memoryBytes: number;
}

interface KernelExports {
  memory: WebAssembly.Memory;
  quantizeRow(x: number, q: number, k: number, qmax: number): number;
  denseRows(q: number, w: number, scale: number, bias: number, y: number, k: number, n: number, xScale: number, relu: number): void;
  denseRows4(
    q: number,
    qStride: number,
    w: number,
    scale: number,
    bias: number,
    y: number,
    yStride: number,
    k: number,
    n: number,
    xScales: number,
    relu: number,
  ): void;
}

/**
 * Inputs the dense layers take at once (kernels/dense-int8.ts, denseRows4): four share each weight load.
 * For AlexNet-224's fc6-fc8, 8 rows took 0.64x the time of one at a time in Node; a whole batch of 8
 * through the engine in workerd, 0.87x per image (`npm run bench`, docs/performance.md).
 */
export const DENSE_BATCH = 4;

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
  // One f32 row per input of a batch chunk: a layer quantizes every row into int16 first, then writes its
  // outputs over the (by then dead) f32 inputs, so one region serves as input and output of every layer.
  const widestIn = Math.max(...shapes.map((s) => s.inFeatures));
  const widest = Math.max(widestIn, ...shapes.map((s) => s.units));
  const rows = take(DENSE_BATCH * widest * 4);
  const rowsQ = take(DENSE_BATCH * widestIn * 2);
  const xScales = take(DENSE_BATCH * 4);

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
      const f32 = new Float32Array(memory, rows, DENSE_BATCH * widest);
      const scales = new Float32Array(memory, xScales, DENSE_BATCH);
      for (let start = 0; start < batch; start += DENSE_BATCH) {
        const n = Math.min(DENSE_BATCH, batch - start);
        for (let r = 0; r < n; r++) {
          f32.set(input.subarray((start + r) * first.inFeatures, (start + r + 1) * first.inFeatures), r * widest);
        }
        // Three rows cost less as four with an all-zero fourth than one by one; one or two do not.
        const together = n >= 3;
        for (const layer of layers) {
          for (let r = 0; r < n; r++) {
            scales[r] = kernel.quantizeRow(rows + r * widest * 4, rowsQ + r * widestIn * 2, layer.inFeatures, layer.qmax) / layer.qmax;
          }
          if (together) {
            if (n === 3) new Int16Array(memory, rowsQ + 3 * widestIn * 2, layer.inFeatures).fill(0);
            kernel.denseRows4(
              rowsQ,
              widestIn,
              layer.weight,
              layer.scale,
              layer.bias,
              rows,
              widest,
              layer.inFeatures,
              layer.units,
              xScales,
              layer.relu ? 1 : 0,
            );
          } else {
            for (let r = 0; r < n; r++) {
              kernel.denseRows(
                rowsQ + r * widestIn * 2,
                layer.weight,
                layer.scale,
                layer.bias,
                rows + r * widest * 4,
                layer.inFeatures,
                layer.units,
                scales[r]!,
                layer.relu ? 1 : 0,
              );
            }
          }
        }
        for (let r = 0; r < n; r++) output.set(f32.subarray(r * widest, r * widest + last.units), (start + r) * last.units);
      }
      return output;
    },
  };
}
