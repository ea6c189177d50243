/**
 * The engine's public face: load a classifier from a manifest and a weights byte stream, then classify
 * preprocessed inputs into `{label, score}`. Knows nothing of HTTP or R2.
 */
import type { Manifest } from "../package/manifest";
import { createSafetensorsSink } from "../package/safetensors";
import { planNetwork, type Network } from "./network";
import { useWasmBackend, wasmHeapBytes } from "./tfjs-wasm-backend";

export interface Prediction {
  label: string;
  score: number;
}

/**
 * Images of one request: each runs the convolutions as it is added, keeping only its flattened features;
 * the dense layers run once for all of them when the batch is finished (Network.head).
 */
export interface ClassifierBatch {
  add(input: Float32Array): void;
  /** One prediction list per added input, in order, each sorted by score. Ends the batch. */
  classify(topK: number): Prediction[][];
  /** Raw network outputs per added input, in order. Ends the batch. */
  forward(): Float32Array[];
}

export interface Classifier {
  readonly manifest: Manifest;
  /** A batch to add images to one at a time (see ClassifierBatch). */
  batch(): ClassifierBatch;
  /** Bytes a batch holds per added image until it is finished: the image's flattened features. */
  readonly featureBytesPerImage: number;
  /** One prediction list per input, each sorted by score, highest first. */
  classify(inputs: readonly Float32Array[], topK: number): Prediction[][];
  /** Raw network output (probabilities, or logits when the manifest has no softmax) for a batch. */
  forward(inputs: readonly Float32Array[]): Float32Array[];
  readonly kernelMemoryBytes: number;
  /**
   * Memory the model keeps resident: its own kernel memories plus the whole tfjs wasm heap, which holds its
   * conv weights and never shrinks (shared by every model of the isolate, so two resident models both count it).
   */
  readonly residentBytes: number;
  /** What runs the convolutions: our int8 kernel build, or "tfjs-wasm-fp32". */
  readonly convolutionKernel: Network["convolutionKernel"];
  /** Model memory at its peak during the load (see Network.loadPeakBytes). */
  readonly loadPeakBytes: number;
  /** Where the load's time went, in ms: streaming + verifying weights (convs are packed on the way), building, warm-up. */
  readonly loadTimings: { weightsMs: number; buildMs: number; warmupMs: number };
  dispose(): void;
}

/**
 * Copies the weights file's bytes into place as they arrive and builds the network. `weights` yields
 * the file in order; each chunk only has to stay valid until the next is requested. If the sequence
 * throws (short, tampered) or the tensors do not fit the layer list, nothing is kept and the error
 * propagates.
 */
export async function loadClassifier(manifest: Manifest, weights: AsyncIterable<Uint8Array>): Promise<Classifier> {
  const started = performance.now();
  const convolutions = manifest.quantization.convolutions;
  // tfjs-wasm is started only for a package that runs its convolutions in fp32: its heap (16 MiB
  // empty) and start-up are not paid otherwise.
  if (convolutions === "fp32") await useWasmBackend();
  const plan = planNetwork(manifest.layers, manifest.input, { convolutions, convActivations: manifest.quantization.conv_activations });
  const sink = createSafetensorsSink(manifest.weights.bytes, (tensors) => {
    const expected = [...plan.tensorNames].sort().join(",");
    const present = tensors
      .map((t) => t.name)
      .sort()
      .join(",");
    if (expected !== present) throw new Error(`weights hold tensors [${present}], the layer list needs [${expected}]`);
    return (tensor) => plan.destination(tensor.name);
  });
  try {
    for await (const chunk of weights) sink.write(chunk);
    sink.end();
  } catch (error) {
    plan.abandon();
    throw error;
  }
  const streamed = performance.now();
  const network = plan.build();
  const built = performance.now();
  network.warmUp(); // tiers up our kernels before a client waits on them
  const timings = { weightsMs: streamed - started, buildMs: built - streamed, warmupMs: performance.now() - built };
  return wrap(manifest, network, timings);
}

const inputSize = (m: Manifest) => m.input.height * m.input.width * m.input.channels;

function wrap(manifest: Manifest, network: Network, loadTimings: Classifier["loadTimings"]): Classifier {
  const size = inputSize(manifest);
  const batch = (): ClassifierBatch => {
    const rows: Float32Array[] = [];
    let finished = false;
    const run = (): Float32Array[] => {
      if (finished) throw new Error("this batch was already finished");
      finished = true;
      if (rows.length === 0) return [];
      const packed = new Float32Array(rows.length * network.featureValues);
      for (const [i, row] of rows.entries()) packed.set(row, i * network.featureValues);
      return network.head(packed, rows.length);
    };
    return {
      add(x) {
        if (finished) throw new Error("this batch was already finished");
        if (x.length !== size) throw new Error(`input ${rows.length} has ${x.length} values, the model takes ${size}`);
        rows.push(network.features(x));
      },
      forward: run,
      classify: (topK) => run().map((scores) => topPredictions(scores, manifest.labels, topK)),
    };
  };
  const forward = (inputs: readonly Float32Array[]): Float32Array[] => {
    const b = batch();
    for (const x of inputs) b.add(x);
    return b.forward();
  };
  return {
    manifest,
    batch,
    featureBytesPerImage: network.featureValues * 4,
    forward,
    classify(inputs, topK) {
      return forward(inputs).map((scores) => topPredictions(scores, manifest.labels, topK));
    },
    get kernelMemoryBytes() {
      return network.kernelMemoryBytes;
    },
    get residentBytes() {
      return network.kernelMemoryBytes + wasmHeapBytes();
    },
    loadPeakBytes: network.loadPeakBytes,
    convolutionKernel: network.convolutionKernel,
    loadTimings,
    dispose: () => network.dispose(),
  };
}

function topPredictions(scores: Float32Array, labels: readonly string[], k: number): Prediction[] {
  return [...scores]
    .map((score, i) => ({ label: labels[i] ?? String(i), score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}
