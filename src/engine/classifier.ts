/**
 * The engine's public face: load a classifier from a manifest and a weights byte stream, then classify
 * preprocessed inputs into `{label, score}` and judge each against the manifest's calibration (unknown or
 * not). Knows nothing of HTTP or R2.
 */
import type { Manifest } from "../package/manifest";
import { createSafetensorsSink } from "../package/safetensors";
import { calibratedProbabilities, inputPart, judgeParts } from "./calibration";
import type { LayerMark } from "./features-int8";
import { planNetwork, softmaxInPlace, type Network } from "./network";
import { useWasmBackend, wasmHeapBytes } from "./tfjs-wasm-backend";

export interface Prediction {
  label: string;
  score: number;
}

/**
 * One image's answer: its top labels, and whether it looks like nothing the model was trained on. Without a
 * calibration in the manifest, `oodScore` is null and `unknown` false.
 */
export interface Judgement {
  /**
   * Sorted by score, highest first. Scores are softmax(logits / T) with the calibration's temperature T;
   * without a calibration, the network's output as before (probabilities, or logits without a softmax layer).
   */
  predictions: Prediction[];
  /** Higher = less like the training data (docs/model-package.md, "calibration"). */
  oodScore: number | null;
  /** oodScore > the threshold: the request's, else the calibration's own. */
  unknown: boolean;
}

/**
 * Images of one request: each runs the convolutions as it is added, keeping only its flattened features;
 * the dense layers run once for all of them when the batch is finished (Network.head).
 */
export interface ClassifierBatch {
  /**
   * Runs the convolutions on one input and keeps its flattened features; with a calibration, also the input's
   * part of the ood score (one number: the input itself is not kept).
   */
  add(input: Float32Array): void;
  /** One judgement per added input, in order; `oodThreshold` overrides the calibration's. Ends the batch. */
  judge(topK: number, oodThreshold?: number): Judgement[];
  /** One prediction list per added input, in order, each sorted by score (as `judge` scores). Ends the batch. */
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
  /** One judgement per input (see ClassifierBatch.judge). */
  judge(inputs: readonly Float32Array[], topK: number, oodThreshold?: number): Judgement[];
  /** Raw network output (probabilities, or logits when the manifest has no softmax) for a batch. */
  forward(inputs: readonly Float32Array[]): Float32Array[];
  /**
   * One input's logits, calling `mark` after each feature layer our int8 kernels run (with its index in the
   * manifest's layer list) and once after all the dense layers (with the last dense layer's index): what
   * src/engine/profile.ts times. Never on the request path.
   */
  traceForward(input: Float32Array, mark: LayerMark): Float32Array;
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
  const { calibration } = manifest;
  // What a score is: calibrated probabilities where the package has a calibration, else the network's output.
  const scoresOf = (logits: Float32Array): ArrayLike<number> => {
    if (calibration) return calibratedProbabilities(logits, calibration.temperature);
    if (network.softmax) softmaxInPlace(logits);
    return logits;
  };
  const batch = (): ClassifierBatch => {
    const rows: Float32Array[] = [];
    // The input part of each image's ood score, computed in `add`: the input tensor is not kept for the dense
    // pass, only this number. One add per input value (12,288 for 64x64x3) against the network's 83.7 M
    // multiply-adds (alexnet-fmnist-64-v8): 0.015% of the operations; timed in workerd, ~0.35% of a forward
    // pass, whose kernels are SIMD where this loop is scalar JS.
    const fromInputs: number[] = [];
    let finished = false;
    /** Logits, one row per added input. */
    const run = (): Float32Array[] => {
      if (finished) throw new Error("this batch was already finished");
      finished = true;
      if (rows.length === 0) return [];
      const packed = new Float32Array(rows.length * network.featureValues);
      for (const [i, row] of rows.entries()) packed.set(row, i * network.featureValues);
      return network.head(packed, rows.length);
    };
    const judge = (topK: number, oodThreshold?: number): Judgement[] =>
      run().map((logits, i) => {
        // Judged before scoresOf, which may turn the row into probabilities in place.
        const verdict = calibration ? judgeParts(calibration, logits, fromInputs[i]!, oodThreshold) : undefined;
        return {
          predictions: topPredictions(scoresOf(logits), manifest.labels, topK),
          oodScore: verdict?.ood_score ?? null,
          unknown: verdict?.unknown ?? false,
        };
      });
    return {
      add(x) {
        if (finished) throw new Error("this batch was already finished");
        if (x.length !== size) throw new Error(`input ${rows.length} has ${x.length} values, the model takes ${size}`);
        rows.push(network.features(x));
        if (calibration) fromInputs.push(inputPart(calibration, x, manifest.input));
      },
      forward: () =>
        run().map((logits) => {
          if (network.softmax) softmaxInPlace(logits);
          return logits;
        }),
      judge,
      classify: (topK) => judge(topK).map((j) => j.predictions),
    };
  };
  const forward = (inputs: readonly Float32Array[]): Float32Array[] => {
    const b = batch();
    for (const x of inputs) b.add(x);
    return b.forward();
  };
  const judge = (inputs: readonly Float32Array[], topK: number, oodThreshold?: number): Judgement[] => {
    const b = batch();
    for (const x of inputs) b.add(x);
    return b.judge(topK, oodThreshold);
  };
  const lastDense = manifest.layers.map((layer) => layer.op).lastIndexOf("dense");
  const traceForward = (x: Float32Array, mark: LayerMark): Float32Array => {
    const logits = network.head(network.features(x, mark), 1)[0]!;
    mark(lastDense);
    return logits;
  };
  return {
    manifest,
    batch,
    featureBytesPerImage: network.featureValues * 4,
    forward,
    traceForward,
    judge,
    classify: (inputs, topK) => judge(inputs, topK).map((j) => j.predictions),
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

function topPredictions(scores: ArrayLike<number>, labels: readonly string[], k: number): Prediction[] {
  return Array.from(scores, (score, i) => ({ label: labels[i] ?? String(i), score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}
