/**
 * The feature layers (conv2d, lrn, maxpool up to flatten) in fp32 on tfjs's WebAssembly SIMD backend
 * (XNNPACK), for packages whose manifest asks for `quantization.convolutions: "fp32"` (and every package
 * written before int8 convolutions existed). Weights are dequantized to fp32 once at load (2.3 M
 * parameters for AlexNet: 9 MiB); LRN runs on our own kernel (kernels/lrn.ts), faster than tfjs's.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { InputShape, Layer } from "../package/manifest";
import { createLrnKernel } from "./lrn";
import { releasePackedFilter, reserveWasmHeap, wasmHeapBytes } from "./tfjs-wasm-backend";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;

export interface TfjsFeaturesPlan {
  readonly tensorNames: readonly string[];
  destination(tensor: string): Uint8Array | undefined;
  /**
   * Packs every conv layer into XNNPACK once all their bytes are in. The exporter writes conv tensors
   * before dense ones, so the network calls this at the first dense tensor: packing then happens before
   * the dense layers' ~56 MiB is allocated, and the two never peak together.
   */
  packIfComplete(): void;
  build(): TfjsFeatures;
  abandon(): void;
}

export interface TfjsFeatures {
  run(input: Float32Array): Float32Array;
  /** Our LRN kernel's memory (tfjs's heap is counted by wasmHeapBytes). */
  readonly memoryBytes: number;
  /** Model memory at its worst while packing, given the other kernels' bytes then. */
  readonly peakBytes: number;
  warmUp(): void;
  dispose(): void;
}

interface ConvWeights {
  layer: ConvLayer;
  inChannels: number;
  weight: Uint8Array; // int8 HWIO, filled by the stream
  scale: Uint8Array; // f32 per filter
  bias: Uint8Array; // f32 per filter
}

interface ConvTensors {
  filters: tf.Tensor4D[]; // one per group
  biases: tf.Tensor1D[];
}

/** `otherKernelBytes` reports the memory of the network's other kernels when sampled (peak accounting). */
export function planTfjsFeatures(layers: readonly Layer[], input: InputShape, otherKernelBytes: () => number): TfjsFeaturesPlan {
  let [h, w, c] = [input.height, input.width, input.channels];
  const convs: ConvWeights[] = [];
  const lrnNeeds = { values: 0, channels: 0, size: 0 }; // the largest LRN input, one example
  for (const layer of layers) {
    if (layer.op === "conv2d") {
      const inGroup = c / layer.groups;
      convs.push({
        layer,
        inChannels: c,
        weight: new Uint8Array(layer.kernel * layer.kernel * inGroup * layer.filters),
        scale: new Uint8Array(layer.filters * 4),
        bias: new Uint8Array(layer.filters * 4),
      });
      h = Math.floor((h + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      w = Math.floor((w + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      c = layer.filters;
    } else if (layer.op === "maxpool") {
      h = Math.floor((h - layer.window) / layer.stride) + 1;
      w = Math.floor((w - layer.window) / layer.stride) + 1;
    } else if (layer.op === "lrn") {
      lrnNeeds.values = Math.max(lrnNeeds.values, h * w * c);
      lrnNeeds.channels = Math.max(lrnNeeds.channels, c);
      lrnNeeds.size = Math.max(lrnNeeds.size, layer.size);
    }
  }
  const staged = new Map<string, Uint8Array>();
  for (const conv of convs) {
    staged.set(`${conv.layer.name}.weight`, conv.weight);
    staged.set(`${conv.layer.name}.scale`, conv.scale);
    staged.set(`${conv.layer.name}.bias`, conv.bias);
  }
  const convNames = [...staged.keys()];
  const handedOut = new Set<string>();
  const lrn = createLrnKernel(Math.max(1, lrnNeeds.values), Math.max(1, lrnNeeds.channels), Math.max(1, lrnNeeds.size));
  let packed: PackedConvolutions | undefined;
  const pack = () => {
    packed ??= packConvolutions(convs, otherKernelBytes() + lrn.memoryBytes);
    staged.clear(); // the staged bytes now live in tfjs: let them go
    return packed;
  };

  return {
    tensorNames: convNames,
    destination(tensor) {
      const bytes = staged.get(tensor);
      if (bytes) handedOut.add(tensor);
      return bytes;
    },
    packIfComplete() {
      if (!packed && convNames.every((name) => handedOut.has(name))) pack();
    },
    build() {
      const { tensors, peakBytes } = pack();
      let disposed = false;
      /** One layer; the caller disposes its input, so at most two activations live at once. */
      const apply = (x: tf.Tensor4D, layer: Layer): tf.Tensor4D => {
        switch (layer.op) {
          case "conv2d":
            return convolve(x, layer, tensors.get(layer.name)!);
          case "lrn":
            return tf.tensor4d(lrn.run(x.dataSync() as Float32Array, x.shape[3], layer), x.shape);
          case "maxpool":
            return tf.maxPool(x, layer.window, layer.stride, "valid");
          default:
            return x;
        }
      };
      return {
        memoryBytes: lrn.memoryBytes,
        peakBytes: Math.max(peakBytes, wasmHeapBytes() + otherKernelBytes() + lrn.memoryBytes),
        run(data) {
          let x = tf.tensor4d(data, [1, input.height, input.width, input.channels]);
          for (const layer of layers) {
            const next = apply(x, layer);
            if (next !== x) x.dispose();
            x = next;
          }
          const flat = x.dataSync() as Float32Array;
          x.dispose();
          return flat;
        },
        warmUp() {
          if (lrnNeeds.values > 0)
            lrn.run(new Float32Array(lrnNeeds.values), lrnNeeds.channels, { size: lrnNeeds.size, alpha: 1e-4, beta: 0.75, k: 2 });
        },
        dispose() {
          if (disposed) return;
          disposed = true;
          for (const t of tensors.values()) tf.dispose([...t.filters, ...t.biases]);
        },
      };
    },
    abandon() {
      if (packed) for (const t of packed.tensors.values()) tf.dispose([...t.filters, ...t.biases]);
      staged.clear();
    },
  };
}

function convolve(x: tf.Tensor4D, layer: ConvLayer, { filters, biases }: ConvTensors): tf.Tensor4D {
  return tf.tidy(() => {
    const groupInputs: tf.Tensor4D[] = layer.groups === 1 ? [x] : tf.split(x, layer.groups, 3);
    const outputs = groupInputs.map((xs, g) =>
      tf.fused.conv2d({
        x: xs,
        filter: filters[g]!,
        strides: layer.stride,
        pad: layer.padding,
        bias: biases[g]!,
        activation: layer.activation === "relu" ? "relu" : "linear",
      }),
    );
    return (outputs.length === 1 ? outputs[0]! : tf.concat(outputs, 3)) as tf.Tensor4D;
  });
}

/**
 * Uploads each conv layer's weights and has XNNPACK pack them at once (one run on a zero input), then
 * frees the uploaded copy (see releasePackedFilter). Largest layer first: each freed upload leaves a
 * hole the next, smaller, upload fits in, so the wasm heap (which never shrinks) holds only one
 * upload at a time instead of all of them.
 */
interface PackedConvolutions {
  tensors: Map<string, ConvTensors>;
  /** Model memory at its worst while packing (see Network.loadPeakBytes). */
  peakBytes: number;
}

function packConvolutions(convs: ConvWeights[], kernelBytes: number): PackedConvolutions {
  const tensors = new Map<string, ConvTensors>();
  const staged = () => convs.reduce((sum, c) => sum + c.weight.byteLength + c.scale.byteLength + c.bias.byteLength, 0);
  let peakBytes = 0;
  const sample = (transient: number) => {
    peakBytes = Math.max(peakBytes, wasmHeapBytes() + kernelBytes + staged() + transient);
  };
  const bySize = [...convs].sort((a, b) => b.weight.byteLength - a.weight.byteLength);
  const fp32 = (c: ConvWeights) => 4 * c.weight.byteLength;
  // What packing needs: tfjs's transposed copy and XNNPACK's packed copy of every layer, plus the
  // largest upload in flight. Reserved at once so the heap does not overshoot while growing.
  reserveWasmHeap([...convs.flatMap((c) => [fp32(c), RESERVE_FACTOR * fp32(c)]), bySize[0] ? fp32(bySize[0]) : 0]);
  for (const conv of bySize) {
    const packed = convToTensors(conv);
    sample(4 * conv.weight.byteLength); // the fp32 copy convToTensors just uploaded from
    conv.weight = conv.scale = conv.bias = EMPTY; // staged bytes are in tfjs now
    tf.tidy(() => {
      // XNNPACK's operator does not depend on the input's height and width: the smallest input that
      // gives one output pixel packs it at no compute cost.
      const side = Math.max(1, conv.layer.kernel - 2 * conv.layer.padding);
      const dummy = tf.zeros([1, side, side, conv.inChannels]) as tf.Tensor4D;
      convolve(dummy, conv.layer, packed).dataSync();
    });
    sample(0);
    packed.filters.forEach(releasePackedFilter);
    tensors.set(conv.layer.name, packed);
  }
  sample(0);
  return { tensors, peakBytes };
}

const EMPTY = new Uint8Array(0);
/**
 * Room reserved beyond the transposed and packed copies: XNNPACK rounds output channels up to its tile
 * and keeps biases beside the weights. 5% left the heap at 35 MiB for AlexNet (40 MiB growing freely).
 */
export const RESERVE_FACTOR = 1.05;

/** Dequantizes a conv layer's int8 HWIO weights and splits them into one tensor per group. */
function convToTensors(c: ConvWeights): ConvTensors {
  const { layer } = c;
  const q = new Int8Array(c.weight.buffer, c.weight.byteOffset, c.weight.byteLength);
  const scale = new Float32Array(c.scale.buffer.slice(c.scale.byteOffset, c.scale.byteOffset + c.scale.byteLength));
  const bias = new Float32Array(c.bias.buffer.slice(c.bias.byteOffset, c.bias.byteOffset + c.bias.byteLength));
  const f = layer.filters;
  const perGroup = f / layer.groups;
  const taps = q.length / f; // kernel * kernel * inChannels/groups
  const filters: tf.Tensor4D[] = [];
  const biases: tf.Tensor1D[] = [];
  for (let g = 0; g < layer.groups; g++) {
    const w = new Float32Array(taps * perGroup);
    for (let t = 0; t < taps; t++) {
      for (let o = 0; o < perGroup; o++) {
        const src = t * f + g * perGroup + o;
        w[t * perGroup + o] = q[src]! * scale[g * perGroup + o]!;
      }
    }
    filters.push(tf.tensor4d(w, [layer.kernel, layer.kernel, c.inChannels / layer.groups, perGroup]));
    biases.push(tf.tensor1d(bias.subarray(g * perGroup, (g + 1) * perGroup)));
  }
  return { filters, biases };
}
