/**
 * Builds a network's forward pass from the manifest's layer list (docs/model-package.md, "Layers").
 *
 * The layers before `flatten` (convolutions, LRN, pooling) run either on our int8 WebAssembly SIMD
 * kernels (features-int8.ts, the default) or in fp32 on tfjs's WebAssembly backend (features-tfjs.ts),
 * as the manifest's `quantization.convolutions` says. The dense layers that follow `flatten` always run
 * on our int8 kernel. No layer is special-cased by name: a new AlexNet variant is a new manifest.
 */
import type { InputShape, Layer } from "../package/manifest";
import { createDenseStack, type DenseShape, type DenseStack } from "./dense-int8";
import type { KernelBuild } from "./feature-kernels";
import { planInt8Features, type LayerMark } from "./features-int8";
import type { CodeRule } from "./input-code";
import { planTfjsFeatures } from "./features-tfjs";

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
   * Runs one NHWC input; returns its class probabilities (or logits, without softmax). The convolutions
   * always run one image at a time: the wasm heaps never shrink, so a batch would leave them sized for
   * its activations.
   */
  forward(input: Float32Array): Float32Array;
  /**
   * The layers before flatten on one NHWC input: its flattened features (`featureValues` values, 9216 for
   * AlexNet-224), all a batch keeps of an image until `head`. `mark` (for the profiler) is called after each
   * feature layer with its index in the layer list, by the int8 kernels; tfjs runs the layers as one graph
   * and never calls it.
   */
  features(input: Float32Array, mark?: LayerMark): Float32Array;
  /**
   * The dense layers on `batch` rows of features at once, which shares each weight load among up to four
   * images; one row of logits per input: the last dense layer's output, before any softmax (see `softmax`).
   */
  head(features: Float32Array, batch: number): Float32Array[];
  /** Whether the layer list ends in softmax, which `forward` applies and `head` leaves to its caller. */
  readonly softmax: boolean;
  readonly featureValues: number;
  readonly classes: number;
  /** Runs our own kernels a few times on zeros: V8 runs new wasm in its baseline tier first. */
  warmUp(): void;
  /** Bytes held outside tfjs: the memories of our kernels (int8 dense, int8 features or LRN). */
  readonly kernelMemoryBytes: number;
  /** Which build of our convolution kernels runs, or "tfjs-wasm-fp32" when tfjs runs the convolutions. */
  readonly convolutionKernel: KernelBuild | "tfjs-wasm-fp32";
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

export type ConvolutionMode = "int8" | "fp32";

export interface NetworkOptions {
  /** Where the convolutions run: our int8 kernels or tfjs-wasm in fp32 (the manifest's choice). */
  convolutions: ConvolutionMode;
  /** How the int8 convolutions code a signed input (the manifest's conv_activations). */
  convActivations: CodeRule;
  /** Which build of the int8 kernels; by default the best this runtime accepts. */
  kernelBuild?: KernelBuild;
}

/** Checks the layer list against the input shape and allocates a home for every weight tensor. */
export function planNetwork(layers: readonly Layer[], input: InputShape, options: NetworkOptions): NetworkPlan {
  let shape: number[] = [input.height, input.width, input.channels]; // per example, NHWC without N
  const denseShapes: DenseShape[] = [];
  let flattened = false;
  let softmax = false;

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
        shape = [
          outSize(h, layer.kernel, layer.stride, layer.padding, where),
          outSize(w, layer.kernel, layer.stride, layer.padding, where),
          layer.filters,
        ];
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
  const featureLayers = layers.slice(
    0,
    layers.findIndex((l) => l.op === "flatten"),
  );
  const denseNames = denseShapes.flatMap((d) => ["weight", "scale", "bias"].map((part) => `${d.name}.${part}`));
  let dense: DenseStack | undefined;
  const features =
    options.convolutions === "int8"
      ? int8Features(featureLayers, input, options)
      : tfjsFeatures(featureLayers, input, () => dense?.memoryBytes ?? 0);
  return {
    tensorNames: [...features.tensorNames, ...denseNames],
    destination(tensor) {
      const staged = features.destination(tensor);
      if (staged) return staged;
      if (!denseNames.includes(tensor)) throw new NetworkError(`no layer takes a tensor named ${tensor}`);
      if (!dense) {
        features.beforeDense?.();
        dense = createDenseStack(denseShapes);
      }
      return dense.destination(tensor)!;
    },
    build() {
      dense ??= createDenseStack(denseShapes);
      const built = features.build(dense.memoryBytes);
      const network = assemble(built.stage, dense, input, softmax, dense.memoryBytes + built.memoryBytes, built.peakBytes);
      return { ...network, convolutionKernel: built.kernel };
    },
    abandon: () => features.abandon(),
  };
}

/** The layers before flatten, whichever kernels run them, as the one network plan above drives them. */
interface FeaturePlan {
  readonly tensorNames: readonly string[];
  destination(tensor: string): Uint8Array | undefined;
  /** Called once, at the first dense tensor: every conv tensor is in by then (the exporter writes them first). */
  beforeDense?(): void;
  /** Finishes the stage; `denseBytes` is the dense kernel's memory, part of the load's peak. */
  build(denseBytes: number): { stage: FeatureStage; memoryBytes: number; peakBytes: number; kernel: Network["convolutionKernel"] };
  abandon(): void;
}

function int8Features(layers: readonly Layer[], input: InputShape, options: NetworkOptions): FeaturePlan {
  const plan = planInt8Features(layers, input, options.convActivations, options.kernelBuild);
  return {
    tensorNames: plan.tensorNames,
    destination: (tensor) => plan.destination(tensor),
    build(denseBytes) {
      const stagedBytes = plan.stagedBytes;
      const built = plan.build();
      // The staged HWIO weights live until the packed copy exists.
      return { stage: built, memoryBytes: built.memoryBytes, peakBytes: denseBytes + built.memoryBytes + stagedBytes, kernel: built.build };
    },
    abandon() {},
  };
}

function tfjsFeatures(layers: readonly Layer[], input: InputShape, denseBytes: () => number): FeaturePlan {
  const plan = planTfjsFeatures(layers, input, denseBytes);
  return {
    tensorNames: plan.tensorNames,
    destination: (tensor) => plan.destination(tensor),
    beforeDense: () => plan.packIfComplete(),
    build() {
      const built = plan.build();
      return { stage: built, memoryBytes: built.memoryBytes, peakBytes: built.peakBytes, kernel: "tfjs-wasm-fp32" };
    },
    abandon: () => plan.abandon(),
  };
}

/** A window's output size along one axis: floor((size + 2 padding - window) / stride) + 1, at least 1. */
export function outSize(size: number, window: number, stride: number, padding: number, where: string): number {
  const out = Math.floor((size + 2 * padding - window) / stride) + 1;
  if (out < 1) throw new NetworkError(`${where}: a ${window}x${window} window does not fit a ${size}-pixel input`);
  return out;
}

interface FeatureStage {
  run(input: Float32Array, mark?: LayerMark): Float32Array;
  warmUp?(): void;
  dispose?(): void;
}

function assemble(
  features: FeatureStage,
  dense: DenseStack,
  input: InputShape,
  softmax: boolean,
  kernelMemoryBytes: number,
  loadPeakBytes: number,
): Omit<Network, "convolutionKernel"> {
  let disposed = false;
  const size = input.height * input.width * input.channels;
  const featuresOf = (data: Float32Array, mark?: LayerMark): Float32Array => {
    if (disposed) throw new NetworkError("the network was disposed");
    if (data.length !== size) throw new NetworkError(`input has ${data.length} values, expected ${size}`);
    return features.run(data, mark);
  };
  const head = (rows: Float32Array, batch: number): Float32Array[] => {
    if (disposed) throw new NetworkError("the network was disposed");
    const out = dense.run(rows, batch);
    const classes = dense.outFeatures;
    return Array.from({ length: batch }, (_, i) => out.subarray(i * classes, (i + 1) * classes));
  };
  return {
    classes: dense.outFeatures,
    featureValues: dense.inFeatures,
    kernelMemoryBytes,
    loadPeakBytes,
    features: featuresOf,
    head,
    softmax,
    forward: (data) => {
      const row = head(featuresOf(data), 1)[0]!;
      if (softmax) softmaxInPlace(row);
      return row;
    },
    warmUp() {
      const zeros = new Float32Array(dense.inFeatures);
      for (let i = 0; i < 3; i++) dense.run(zeros, 1);
      if (features.warmUp) features.warmUp();
      else for (let i = 0; i < 2; i++) features.run(new Float32Array(size));
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      features.dispose?.();
    },
  };
}

/** Numerically stable softmax, in place. */
export function softmaxInPlace(row: Float32Array): void {
  const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += row[i] = Math.exp(row[i]! - max);
  for (let i = 0; i < row.length; i++) row[i]! /= sum;
}
