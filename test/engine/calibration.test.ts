import { describe, expect, it } from "vitest";
import { calibratedProbabilities, energy, judge, oodScore } from "../../src/engine/calibration";
import { loadClassifier } from "../../src/engine/classifier";
import { parseManifest } from "../../src/package/manifest";
import { parseHeader } from "../../src/package/safetensors";
import { streamOf } from "../support/tiny-package";
import tinyManifest from "../fixtures/tiny-package/manifest.json";
import tinyWeights from "../fixtures/tiny-package/weights.safetensors";
import defaultManifest from "../../model/alexnet-fmnist-64-v8/manifest.json";
import defaultWeights from "../../model/alexnet-fmnist-64-v8/weights.safetensors";
import defaultSamples from "../../model/alexnet-fmnist-64-v8/samples.safetensors";

function readSamples(file: ArrayBuffer): Map<string, { shape: number[]; data: Float32Array }> {
  const bytes = new Uint8Array(file);
  const start = 8 + Number(new DataView(file).getBigUint64(0, true));
  return new Map(
    parseHeader(new TextDecoder().decode(bytes.subarray(8, start))).map((t) => [
      t.name,
      { shape: t.shape, data: new Float32Array(file.slice(start + t.begin, start + t.end)) },
    ]),
  );
}

describe("the manifest's calibration", () => {
  it("reproduces the exporter's ood_score on the default model's sample images, and calls the cat unknown", async () => {
    const manifest = parseManifest(defaultManifest);
    const calibration = manifest.calibration!;
    const logitsModel = { ...manifest, layers: manifest.layers.filter((l) => l.op !== "softmax") };
    const classifier = await loadClassifier(logitsModel, streamOf(new Uint8Array(defaultWeights), 4096));
    const tensors = readSamples(defaultSamples);
    const inputs = tensors.get("inputs")!;
    const want = tensors.get("ood_scores")!.data;
    const count = manifest.samples!.count;
    const size = inputs.data.length / count;
    const verdicts: boolean[] = [];
    for (let s = 0; s < count; s++) {
      const input = inputs.data.slice(s * size, (s + 1) * size);
      const [logits] = classifier.forward([input]);
      const got = oodScore(calibration, logits!, input, manifest.input);
      expect(Math.abs(got - want[s]!)).toBeLessThanOrEqual(1e-3 + 1e-3 * Math.abs(want[s]!));
      verdicts.push(judge(calibration, logits!, input, manifest.input).unknown);
      expect(judge(calibration, logits!, input, manifest.input, Number.POSITIVE_INFINITY).unknown).toBe(false);
    }
    // the four Fashion-MNIST test images are known; the photograph of Chelsea the cat and the checkerboard are not
    expect(verdicts).toEqual([false, false, false, false, true, true]);
    classifier.dispose();
  });

  it("judges a batch as the arithmetic does: calibrated scores, each image's own ood_score, the request's threshold", async () => {
    const manifest = parseManifest(defaultManifest); // as served: its layer list ends in softmax
    expect(manifest.layers.at(-1)!.op).toBe("softmax");
    const calibration = manifest.calibration!;
    const logitsModel = { ...manifest, layers: manifest.layers.filter((l) => l.op !== "softmax") };
    const served = await loadClassifier(manifest, streamOf(new Uint8Array(defaultWeights), 4096));
    const reference = await loadClassifier(logitsModel, streamOf(new Uint8Array(defaultWeights), 4096));
    const tensors = readSamples(defaultSamples);
    const inputs = tensors.get("inputs")!;
    const exporter = tensors.get("ood_scores")!.data;
    const count = manifest.samples!.count;
    const size = inputs.data.length / count;
    const images = Array.from({ length: count }, (_, s) => inputs.data.slice(s * size, (s + 1) * size));
    const labels = manifest.labels.length;

    const batch = served.batch();
    for (const x of images) batch.add(x.slice());
    const judged = batch.judge(labels);
    expect(judged).toHaveLength(count);
    for (const [s, x] of images.entries()) {
      const [logits] = reference.forward([x]);
      const want = oodScore(calibration, logits!, x, manifest.input);
      expect(judged[s]!.oodScore).toBeCloseTo(want, 9);
      expect(Math.abs(judged[s]!.oodScore! - exporter[s]!)).toBeLessThanOrEqual(1e-3 + 1e-3 * Math.abs(exporter[s]!));
      expect(judged[s]!.unknown).toBe(want > calibration.ood.threshold);
      // Scores: softmax(logits / T) over every label, sorted; not the manifest's plain softmax.
      const p = calibratedProbabilities(logits!, calibration.temperature);
      const byLabel = new Map(judged[s]!.predictions.map((q) => [q.label, q.score]));
      for (const [i, label] of manifest.labels.entries()) expect(byLabel.get(label)).toBeCloseTo(p[i]!, 12);
      expect(judged[s]!.predictions.reduce((a, q) => a + q.score, 0)).toBeCloseTo(1, 9);
      const plain = served.forward([x])[0]!;
      const top = judged[s]!.predictions[0]!;
      expect(manifest.labels[plain.indexOf(Math.max(...plain))]).toBe(top.label); // T > 0 keeps the order
    }
    expect(judged.map((j) => j.unknown)).toEqual([false, false, false, false, true, true]);

    // The request's threshold, both ways; the batch kept each input's part as a number, not the input: the
    // caller may reuse its tensors once they are added.
    for (const [threshold, verdicts] of [
      [Number.POSITIVE_INFINITY, [false, false, false, false, false, false]],
      [Number.NEGATIVE_INFINITY, [true, true, true, true, true, true]],
    ] as const) {
      const again = served.batch();
      for (const x of images) {
        const reused = x.slice();
        again.add(reused);
        reused.fill(0);
      }
      const out = again.judge(3, threshold);
      expect(out.map((j) => j.unknown)).toEqual(verdicts);
      expect(out.map((j) => j.oodScore)).toEqual(judged.map((j) => j.oodScore));
      expect(out.map((j) => j.predictions)).toEqual(judged.map((j) => j.predictions.slice(0, 3)));
    }
    served.dispose();
    reference.dispose();
  });

  it("answers ood_score null and unknown false for a package without calibration, its scores as before", async () => {
    const manifest = parseManifest(tinyManifest);
    expect(manifest.calibration).toBeUndefined();
    expect(judge(manifest.calibration, [1, 2, 3], [0, 0, 0], { height: 1, width: 1, channels: 3 })).toEqual({
      ood_score: null,
      unknown: false,
    });
    const classifier = await loadClassifier(manifest, streamOf(new Uint8Array(tinyWeights), 997));
    const size = manifest.input.height * manifest.input.width * manifest.input.channels;
    const x = Float32Array.from({ length: size }, (_, i) => Math.sin(i));
    const [judged] = classifier.judge([x], manifest.labels.length, -1e9);
    expect(judged!.oodScore).toBeNull();
    expect(judged!.unknown).toBe(false);
    const plain = classifier.forward([x])[0]!; // the manifest's own softmax
    for (const p of judged!.predictions) expect(p.score).toBe(plain[manifest.labels.indexOf(p.label)]);
    classifier.dispose();
  });

  it("computes softmax(logits / T) and the energy", () => {
    const p = calibratedProbabilities([2, 1, 0], 0.5);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(p[0]! / p[1]!).toBeCloseTo(Math.exp(2), 10);
    expect(energy([0, 0], 1)).toBeCloseTo(-Math.log(2), 12);
  });

  it("refuses a calibration whose input grid does not match its means", () => {
    const bad = structuredClone(defaultManifest) as { calibration: { ood: { input: { mean: number[] } } } };
    bad.calibration.ood.input.mean.pop();
    expect(() => parseManifest(bad)).toThrow(/grid \* grid/);
  });
});
