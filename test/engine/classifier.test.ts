import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { loadClassifier } from "../../src/engine/classifier";
import { parseManifest } from "../../src/package/manifest";
import { referenceForward } from "../support/reference-forward";
import { makeTinyPackage, randomInput, streamOf, TINY_LAYERS } from "../support/tiny-package";

const LOGIT_LAYERS = TINY_LAYERS.filter((l) => l.op !== "softmax");

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

describe("the inference engine", () => {
  for (const [convolutions, tolerance] of [
    ["int8", 0.02],
    ["fp32", 0.01],
  ] as const) {
    const where = convolutions === "int8" ? "on the int8 kernels" : "on tfjs-wasm in fp32";
    // fp32 convolutions leave only the dense layers' int16 activation rounding; int8 convolutions add
    // 7-bit activation rounding at every conv layer.
    it(`matches an fp32 reference forward pass of the same int8 weights within ${tolerance * 100}% (relative L2), convolutions ${where}`, async () => {
      const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS, convolutions });
      const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
      expect(classifier.convolutionKernel === "tfjs-wasm-fp32").toBe(convolutions === "fp32");
      for (const seed of [1, 2, 3]) {
        const x = randomInput(24 * 24 * 3, seed);
        const [ours] = classifier.forward([x]);
        const reference = referenceForward(LOGIT_LAYERS, pkg.dequantized, pkg.manifest.input, x);
        expect(relativeError(ours!, reference)).toBeLessThan(tolerance);
      }
      classifier.dispose();
    });

    it(`follows the LRN formula for any beta, not only the paper's 0.75, convolutions ${where}`, async () => {
      const layers = LOGIT_LAYERS.map((l) => (l.op === "lrn" ? { ...l, beta: 0.6, k: 1.5 } : l));
      const pkg = await makeTinyPackage({ layers, seed: 3, convolutions });
      const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
      const x = randomInput(24 * 24 * 3, 11);
      const [ours] = classifier.forward([x]);
      expect(relativeError(ours!, referenceForward(layers, pkg.dequantized, pkg.manifest.input, x))).toBeLessThan(tolerance);
      classifier.dispose();
    });

    it(`stays within 5% of the unquantized fp32 network and agrees on the top class, convolutions ${where}`, async () => {
      const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS, seed: 7, convolutions });
      const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
      for (const seed of [4, 5, 6]) {
        const x = randomInput(24 * 24 * 3, seed);
        const [ours] = classifier.forward([x]);
        const reference = referenceForward(LOGIT_LAYERS, pkg.fp32, pkg.manifest.input, x);
        expect(relativeError(ours!, reference)).toBeLessThan(0.05);
        expect(argmax(ours!)).toBe(argmax(reference));
      }
      classifier.dispose();
    });
  }

  it("runs the convolutions of a package written before int8 convolutions (no quantization.convolutions) in fp32 on tfjs-wasm", async () => {
    const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS, seed: 4 });
    const { convolutions: _, ...older } = pkg.manifest.quantization;
    const manifest = parseManifest({ ...pkg.manifest, quantization: older });
    expect(manifest.quantization.convolutions).toBe("fp32");
    const classifier = await loadClassifier(manifest, streamOf(pkg.weights));
    expect(classifier.convolutionKernel).toBe("tfjs-wasm-fp32");
    const x = randomInput(24 * 24 * 3, 8);
    expect(relativeError(classifier.forward([x])[0]!, referenceForward(LOGIT_LAYERS, pkg.dequantized, pkg.manifest.input, x))).toBeLessThan(
      0.01,
    );
    classifier.dispose();
  });

  it("returns labelled predictions sorted by score that sum to one", async () => {
    const pkg = await makeTinyPackage();
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    const [predictions] = classifier.classify([randomInput(24 * 24 * 3, 9)], 5);
    expect(predictions!.map((p) => p.label).sort()).toEqual([...pkg.manifest.labels].sort());
    expect(predictions!.reduce((s, p) => s + p.score, 0)).toBeCloseTo(1, 5);
    for (let i = 1; i < predictions!.length; i++) expect(predictions![i - 1]!.score).toBeGreaterThanOrEqual(predictions![i]!.score);
    expect(classifier.classify([randomInput(24 * 24 * 3, 9)], 2)[0]).toHaveLength(2);
    classifier.dispose();
  });

  // The dense layers of a batch run four images at a time (one alone, two one by one, three with a blank
  // fourth): every batch size up to two chunks and a remainder must give each image its own answer exactly.
  it("gives each image of a batch of any size from 1 to 9 exactly the answer it gets alone", async () => {
    const pkg = await makeTinyPackage();
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    const inputs = Array.from({ length: 9 }, (_, s) => randomInput(24 * 24 * 3, s + 1));
    const alone = inputs.map((x) => [...classifier.forward([x])[0]!]);
    for (let n = 1; n <= 9; n++) {
      const batch = classifier.batch();
      for (const x of inputs.slice(0, n)) batch.add(x);
      const together = batch.forward();
      expect(together).toHaveLength(n);
      for (const [i, scores] of together.entries()) expect([...scores]).toEqual(alone[i]);
    }
    expect(classifier.forward(inputs).map((s) => [...s])).toEqual(alone);
    classifier.dispose();
  });

  it("refuses to add to or finish a batch that was already finished", async () => {
    const pkg = await makeTinyPackage();
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    const batch = classifier.batch();
    batch.add(randomInput(24 * 24 * 3, 1));
    expect(batch.classify(2)[0]).toHaveLength(2);
    expect(() => batch.add(randomInput(24 * 24 * 3, 2))).toThrow(/already finished/);
    expect(() => batch.forward()).toThrow(/already finished/);
    classifier.dispose();
  });

  it("leaks no tfjs tensors across classifications when tfjs runs the convolutions", async () => {
    const pkg = await makeTinyPackage({ convolutions: "fp32" });
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) classifier.classify([randomInput(24 * 24 * 3, i), randomInput(24 * 24 * 3, i + 1)], 3);
    expect(tf.memory().numTensors).toBe(before);
    classifier.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
  });

  it("loads a weights file whose dense tensors come before the conv ones", async () => {
    const inOrder = await makeTinyPackage({ layers: LOGIT_LAYERS, seed: 5 });
    const reversed = await makeTinyPackage({ layers: LOGIT_LAYERS, seed: 5, denseFirst: true });
    const a = await loadClassifier(inOrder.manifest, streamOf(inOrder.weights));
    const b = await loadClassifier(reversed.manifest, streamOf(reversed.weights));
    const x = randomInput(24 * 24 * 3, 8);
    expect([...b.forward([x])[0]!]).toEqual([...a.forward([x])[0]!]);
    a.dispose();
    b.dispose();
  });

  it("refuses a weights stream that ends early", async () => {
    const pkg = await makeTinyPackage();
    await expect(loadClassifier(pkg.manifest, streamOf(pkg.weights.slice(0, pkg.weights.length - 10)))).rejects.toThrow(/ended after/);
  });

  it("refuses weights whose tensors do not match the layer list", async () => {
    const pkg = await makeTinyPackage();
    const other = await makeTinyPackage({
      layers: TINY_LAYERS.map((l) => (l.op === "dense" && l.name === "fc7" ? { ...l, units: 20 } : l)),
    });
    const manifest = { ...pkg.manifest, weights: other.manifest.weights };
    await expect(loadClassifier(manifest, streamOf(other.weights))).rejects.toThrow();
  });
});

function argmax(values: Float32Array): number {
  return values.indexOf(Math.max(...values));
}
