import { describe, expect, it } from "vitest";
import { calibratedProbabilities, energy, judge, oodScore } from "../../src/engine/calibration";
import { loadClassifier } from "../../src/engine/classifier";
import { parseManifest } from "../../src/package/manifest";
import { parseHeader } from "../../src/package/safetensors";
import { streamOf } from "../support/tiny-package";
import tinyManifest from "../fixtures/tiny-package/manifest.json";
import defaultManifest from "../../model/alexnet-fmnist-64-v7/manifest.json";
import defaultWeights from "../../model/alexnet-fmnist-64-v7/weights.safetensors";
import defaultSamples from "../../model/alexnet-fmnist-64-v7/samples.safetensors";

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

  it("answers ood_score null and unknown false for a package without calibration", () => {
    const manifest = parseManifest(tinyManifest);
    expect(manifest.calibration).toBeUndefined();
    expect(judge(manifest.calibration, [1, 2, 3], [0, 0, 0], { height: 1, width: 1, channels: 3 })).toEqual({
      ood_score: null,
      unknown: false,
    });
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
