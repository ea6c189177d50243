/**
 * The engine's public face: load a classifier from a manifest and a weights byte stream, then classify
 * preprocessed inputs into `{label, score}`. Knows nothing of HTTP or R2.
 */
import type { Manifest } from "../model/manifest";
import { createSafetensorsSink } from "../model/safetensors";
import { planNetwork, type Network } from "./network";
import { useWasmBackend } from "./tfjs-wasm-backend";

export interface Prediction {
  label: string;
  score: number;
}

export interface Classifier {
  readonly manifest: Manifest;
  /** One prediction list per input, each sorted by score, highest first. */
  classify(inputs: readonly Float32Array[], topK: number): Prediction[][];
  /** Raw network output (probabilities, or logits when the manifest has no softmax) for a batch. */
  forward(inputs: readonly Float32Array[]): Float32Array[];
  readonly kernelMemoryBytes: number;
  /** Model memory at its peak during the load (see Network.loadPeakBytes). */
  readonly loadPeakBytes: number;
  dispose(): void;
}

/**
 * Streams the weights into place and builds the network. If the stream errors (short, tampered) or the
 * tensors do not fit the layer list, nothing is kept and the error propagates.
 */
export async function loadClassifier(manifest: Manifest, weights: ReadableStream<Uint8Array>): Promise<Classifier> {
  await useWasmBackend();
  let plan;
  try {
    plan = planNetwork(manifest.layers, manifest.input);
  } catch (error) {
    await weights.cancel();
    throw error;
  }
  const sink = createSafetensorsSink(manifest.weights.bytes, (tensors) => {
    const expected = [...plan.destinations.keys()].sort().join(",");
    const present = tensors.map((t) => t.name).sort().join(",");
    if (expected !== present) throw new Error(`weights hold tensors [${present}], the layer list needs [${expected}]`);
    return plan.destinations;
  });
  const reader = weights.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      sink.write(value);
    }
    sink.end();
  } catch (error) {
    plan.abandon();
    await reader.cancel().catch(() => {});
    throw error;
  }
  plan.destinations.clear(); // drop the staging buffers' last references as the network takes them over
  const network = plan.build();
  const classifier = wrap(manifest, network);
  classifier.forward([new Float32Array(inputSize(manifest))]); // warm-up: tier up the kernel, pack XNNPACK weights
  return classifier;
}

const inputSize = (m: Manifest) => m.input.height * m.input.width * m.input.channels;

function wrap(manifest: Manifest, network: Network): Classifier {
  const size = inputSize(manifest);
  const forward = (inputs: readonly Float32Array[]): Float32Array[] => {
    if (inputs.length === 0) return [];
    const batch = new Float32Array(inputs.length * size);
    inputs.forEach((x, i) => {
      if (x.length !== size) throw new Error(`input ${i} has ${x.length} values, the model takes ${size}`);
      batch.set(x, i * size);
    });
    const out = network.forward(batch, inputs.length);
    const n = network.classes;
    return inputs.map((_, i) => out.slice(i * n, (i + 1) * n));
  };
  return {
    manifest,
    forward,
    classify(inputs, topK) {
      return forward(inputs).map((scores) => topPredictions(scores, manifest.labels, topK));
    },
    kernelMemoryBytes: network.kernelMemoryBytes,
    loadPeakBytes: network.loadPeakBytes,
    dispose: () => network.dispose(),
  };
}

function topPredictions(scores: Float32Array, labels: readonly string[], k: number): Prediction[] {
  return [...scores]
    .map((score, i) => ({ label: labels[i] ?? String(i), score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}
