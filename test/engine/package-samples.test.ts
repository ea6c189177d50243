import { describe, expect, it } from "vitest";
import { loadClassifier } from "../../src/engine/classifier";
import { parseManifest } from "../../src/package/manifest";
import { parseHeader } from "../../src/package/safetensors";
import { streamOf } from "../support/tiny-package";
import tinyManifest from "../fixtures/tiny-package/manifest.json";
import tinyWeights from "../fixtures/tiny-package/weights.safetensors";
import tinySamples from "../fixtures/tiny-package/samples.safetensors";
import grayManifest from "../fixtures/tiny-gray-package/manifest.json";
import grayWeights from "../fixtures/tiny-gray-package/weights.safetensors";
import graySamples from "../fixtures/tiny-gray-package/samples.safetensors";
import defaultManifest from "../../model/alexnet-fmnist-64-v8/manifest.json";
import defaultWeights from "../../model/alexnet-fmnist-64-v8/weights.safetensors";
import defaultSamples from "../../model/alexnet-fmnist-64-v8/samples.safetensors";

/** Reads the F32 tensors of a samples.safetensors file. */
function readSamples(file: ArrayBuffer): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = new Uint8Array(file);
  const headerLength = Number(new DataView(file).getBigUint64(0, true));
  const start = 8 + headerLength;
  return new Map(
    parseHeader(new TextDecoder().decode(bytes.subarray(8, start))).map((t) => [
      t.name,
      { shape: t.shape, data: new Float32Array(file.slice(start + t.begin, start + t.end)) },
    ]),
  );
}

const packages = [
  ["an RGB package", tinyManifest, tinyWeights, tinySamples],
  ["a greyscale package", grayManifest, grayWeights, graySamples],
  ["the shipped default model", defaultManifest, defaultWeights, defaultSamples],
] as const;

describe("packages written by the PyTorch exporter", () => {
  for (const [what, manifestJson, weights, samples] of packages) {
    it(`reproduces the sample logits that ${what} carries`, async () => {
      const manifest = parseManifest(manifestJson);
      // Compare logits, not probabilities: drop the final softmax.
      const logitsModel = { ...manifest, layers: manifest.layers.filter((l) => l.op !== "softmax") };
      const classifier = await loadClassifier(logitsModel, streamOf(new Uint8Array(weights), 4096));
      const tensors = readSamples(samples);
      const inputs = tensors.get("inputs")!;
      const expected = tensors.get("logits")!;
      const [count, classes] = expected.shape as [number, number];
      expect(count).toBe(manifest.samples!.count);
      const size = inputs.data.length / count;
      const { abs, rel } = manifest.samples!.tolerance;
      for (let s = 0; s < count; s++) {
        const want = expected.data.subarray(s * classes, (s + 1) * classes);
        const [got] = classifier.forward([inputs.data.slice(s * size, (s + 1) * size)]);
        const scale = Math.max(...want.map(Math.abs));
        for (let c = 0; c < classes; c++) expect(Math.abs(got![c]! - want[c]!)).toBeLessThanOrEqual(abs + rel * scale);
        // The exporter simulates the int8 arithmetic step for step (input codes, zero points, integer sums);
        // only LRN's pow and the summation order of fp32 steps may differ, by far less than one code step.
        for (let c = 0; c < classes; c++) expect(Math.abs(got![c]! - want[c]!)).toBeLessThanOrEqual(1e-4 * scale);
        expect(got!.indexOf(Math.max(...got!))).toBe(want.indexOf(Math.max(...want)));
      }
      classifier.dispose();
    });
  }
});
