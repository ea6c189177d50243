/**
 * Builds a network's forward pass from the manifest's layer list (docs/model-package.md, "Layers").
 *
 * Convolutions, LRN and pooling run on tfjs's WebAssembly SIMD backend (XNNPACK) with weights
 * dequantized to fp32 once at load (2.3 M parameters for AlexNet: 9 MiB). The dense layers that follow
 * `flatten` run on our int8 kernel and stay int8. No layer is special-cased by name: a new AlexNet
 * variant is a new manifest.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { InputShape, Layer } from "../model/manifest";
import { createDenseStack, type DenseShape, type DenseStack } from "./dense-int8";
import { createLrnKernel, type LrnKernel } from "./lrn";
import { releasePackedFilter, reserveWasmHeap, wasmHeapBytes } from "./tfjs-wasm-backend";

type ConvLayer = Extract<Layer, { op: "conv2d" }>;

/** Where each tensor of weights.safetensors must land, and how to finish the network once they have. */
export interface NetworkPlan {
  /** Every tensor the network needs, by safetensors name. */
  readonly tensorNames: readonly string[];
  /**
   * The exact-size buffer for a tensor's bytes, asked for when its first byte arrives, in file order.
   * The exporter writes conv tensors before dense ones, so by the first dense tensor every conv weight
   * is in: they are packed into tfjs then, before the dense layers' ~56 MiB is allocated, and the two
   * never peak together.
   */
  destination(tensor: string): Uint8Array;
  /** Turns the filled buffers into a runnable network. Call once, after every byte arrived. */
  build(): Network;
  /** Releases what the plan allocated, when loading fails. */
  abandon(): void;
}

export interface Network {
  /**
   * Runs one NHWC input; returns its class probabilities (or logits, without softmax). One at a time:
   * the wasm heaps never shrink, so a batch would leave them sized for its activations.
   */
  forward(input: Float32Array): Float32Array;
  readonly classes: number;
  /** Runs our own kernels a few times on zeros: V8 runs new wasm in its baseline tier first. */
  warmUp(): void;
  /** Bytes held outside tfjs: the memories of our kernels (int8 dense, LRN). */
  readonly kernelMemoryBytes: number;
  /**
   * The most model memory held at once while the network was built: wasm memories plus the JS
   * buffers staging conv weights, sampled where it peaks (around each layer's upload and packing).
   */
  readonly loadPeakBytes: number;
  dispose(): void;
}

export class NetworkError extends Error {
  override name = "NetworkError";
}

interface ConvWeights {
  layer: ConvLayer;
  inChannels: number;
  weight: Uint8Array; // int8 HWIO, filled by the stream
  scale: Uint8Array; // f32 per filter
  bias: Uint8Array; // f32 per filter
}

/** Checks the layer list against the input shape and allocates a home for every weight tensor. */
export function planNetwork(layers: readonly Layer[], input: InputShape): NetworkPlan {
  let shape: number[] = [input.height, input.width, input.channels]; // per example, NHWC without N
  const convs: ConvWeights[] = [];
  const denseShapes: DenseShape[] = [];
  let flattened = false;
  let softmax = false;
  const lrnNeeds = { values: 0, channels: 0, size: 0 }; // the largest LRN input, one example

  layers.forEach((layer, index) => {
    const where = `layer ${index} (${layer.op})`;
    if (softmax) throw new NetworkError(`${where}: softmax must be the last layer`);
    switch (layer.op) {
      case "conv2d": {
        if (flattened) throw new NetworkError(`${where}: conv2d after flatten`);
        const [h, w, c] = shape as [number, number, number];
        if (c % layer.groups !== 0 || layer.filters % layer.groups !== 0) {
          throw new NetworkError(`${where}: ${c} channels and ${layer.filters} filters do not split into ${layer.groups} groups`);
        }
        const inGroup = c / layer.groups;
        convs.push({
          layer,
          inChannels: c,
          weight: new Uint8Array(layer.kernel * layer.kernel * inGroup * layer.filters),
          scale: new Uint8Array(layer.filters * 4),
          bias: new Uint8Array(layer.filters * 4),
        });
        shape = [outSize(h, layer.kernel, layer.stride, layer.padding, where), outSize(w, layer.kernel, layer.stride, layer.padding, where), layer.filters];
        break;
      }
      case "maxpool": {
        if (flattened) throw new NetworkError(`${where}: maxpool after flatten`);
        const [h, w, c] = shape as [number, number, number];
        shape = [outSize(h, layer.window, layer.stride, 0, where), outSize(w, layer.window, layer.stride, 0, where), c];
        break;
      }
      case "lrn":
        if (flattened) throw new NetworkError(`${where}: lrn after flatten`);
        lrnNeeds.values = Math.max(lrnNeeds.values, shape.reduce((a, b) => a * b, 1));
        lrnNeeds.channels = Math.max(lrnNeeds.channels, shape[2]!);
        lrnNeeds.size = Math.max(lrnNeeds.size, layer.size);
        break;
      case "flatten":
        if (flattened) throw new NetworkError(`${where}: flatten twice`);
        flattened = true;
        shape = [shape.reduce((a, b) => a * b, 1)];
        break;
      case "dense":
        if (!flattened) throw new NetworkError(`${where}: dense before flatten`);
        denseShapes.push({ name: layer.name, inFeatures: shape[0]!, units: layer.units, relu: layer.activation === "relu" });
        shape = [layer.units];
        break;
      case "softmax":
        softmax = true;
        break;
    }
  });
  if (denseShapes.length === 0) throw new NetworkError("the network has no dense layer");
  const convCount = layers.findIndex((l) => l.op === "flatten");

  const staged = new Map<string, Uint8Array>();
  for (const c of convs) {
    staged.set(`${c.layer.name}.weight`, c.weight);
    staged.set(`${c.layer.name}.scale`, c.scale);
    staged.set(`${c.layer.name}.bias`, c.bias);
  }
  const denseNames = denseShapes.flatMap((d) => ["weight", "scale", "bias"].map((part) => `${d.name}.${part}`));
  const lrn = createLrnKernel(Math.max(1, lrnNeeds.values), Math.max(1, lrnNeeds.channels), Math.max(1, lrnNeeds.size));
  const convNames = [...staged.keys()];
  const handedOut = new Set<string>();
  let dense: DenseStack | undefined;
  let packed: PackedConvolutions | undefined;
  const kernelBytes = () => (dense?.memoryBytes ?? 0) + lrn.memoryBytes;
  const pack = () => {
    const result = packConvolutions(convs, kernelBytes());
    staged.clear(); // the staged bytes now live in tfjs: let them go
    return result;
  };

  return {
    tensorNames: [...convNames, ...denseNames],
    destination(tensor) {
      handedOut.add(tensor);
      const conv = staged.get(tensor);
      if (conv) return conv;
      if (!denseNames.includes(tensor)) throw new NetworkError(`no layer takes a tensor named ${tensor}`);
      if (!dense) {
        if (!packed && convNames.every((name) => handedOut.has(name))) packed = pack();
        dense = createDenseStack(denseShapes);
      }
      return dense.destination(tensor)!;
    },
    build() {
      dense ??= createDenseStack(denseShapes);
      packed ??= pack();
      const peakBytes = Math.max(packed.peakBytes, wasmHeapBytes() + kernelBytes());
      return buildNetwork(layers.slice(0, convCount), packed.tensors, dense, lrn, peakBytes, input, softmax, lrnNeeds);
    },
    abandon() {
      if (packed) for (const t of packed.tensors.values()) tf.dispose([...t.filters, ...t.biases]);
      staged.clear();
    },
  };
}

function outSize(size: number, window: number, stride: number, padding: number, where: string): number {
  const out = Math.floor((size + 2 * padding - window) / stride) + 1;
  if (out < 1) throw new NetworkError(`${where}: a ${window}x${window} window does not fit a ${size}-pixel input`);
  return out;
}

interface ConvTensors {
  filters: tf.Tensor4D[]; // one per group
  biases: tf.Tensor1D[];
}

function buildNetwork(
  featureLayers: readonly Layer[],
  convTensors: Map<string, ConvTensors>,
  dense: DenseStack,
  lrn: LrnKernel,
  peakBytes: number,
  input: InputShape,
  softmax: boolean,
  lrnNeeds: { values: number; channels: number; size: number },
): Network {
  let disposed = false;

  /** One layer; the caller disposes its input, so at most two activations live at once. */
  const apply = (x: tf.Tensor4D, layer: Layer): tf.Tensor4D => {
    switch (layer.op) {
      case "conv2d":
        return convolve(x, layer, convTensors.get(layer.name)!);
      case "lrn":
        return tf.tensor4d(lrn.run(x.dataSync() as Float32Array, x.shape[3], layer), x.shape);
      case "maxpool":
        return tf.maxPool(x, layer.window, layer.stride, "valid");
      default:
        return x;
    }
  };
  const features = (input: tf.Tensor4D): Float32Array => {
    let x = input;
    for (const layer of featureLayers) {
      const next = apply(x, layer);
      if (next !== x) x.dispose();
      x = next;
    }
    const flat = x.dataSync() as Float32Array;
    x.dispose();
    return flat;
  };

  return {
    classes: dense.outFeatures,
    kernelMemoryBytes: dense.memoryBytes + lrn.memoryBytes,
    loadPeakBytes: peakBytes,
    warmUp() {
      const zeros = new Float32Array(dense.inFeatures);
      for (let i = 0; i < 3; i++) dense.run(zeros, 1);
      if (lrnNeeds.values > 0) lrn.run(new Float32Array(lrnNeeds.values), lrnNeeds.channels, { size: lrnNeeds.size, alpha: 1e-4, beta: 0.75, k: 2 });
    },
    forward(data) {
      if (disposed) throw new NetworkError("the network was disposed");
      const expected = input.height * input.width * input.channels;
      if (data.length !== expected) throw new NetworkError(`input has ${data.length} values, expected ${expected}`);
      const flat = features(tf.tensor4d(data, [1, input.height, input.width, input.channels]));
      const out = dense.run(flat, 1);
      if (softmax) softmaxInPlace(out);
      return out;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const t of convTensors.values()) tf.dispose([...t.filters, ...t.biases]);
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
  // largest upload in flight. Reserved before packing so the heap does not overshoot while growing.
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

/** Numerically stable softmax, in place. */
function softmaxInPlace(row: Float32Array): void {
  const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += row[i] = Math.exp(row[i]! - max);
  for (let i = 0; i < row.length; i++) row[i]! /= sum;
}
