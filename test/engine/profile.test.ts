import { describe, expect, it } from "vitest";
import { loadClassifier } from "../../src/engine/classifier";
import { layerWork } from "../../src/engine/layer-work";
import { profileForward } from "../../src/engine/profile";
import { makeTinyPackage, randomInput, streamOf, TINY_LAYERS } from "../support/tiny-package";

const LOGIT_LAYERS = TINY_LAYERS.filter((l) => l.op !== "softmax");

describe("profileForward", () => {
  it("times each feature layer and the dense layers in the order they run, and divides the counted work by those times", async () => {
    const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS });
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    // A clock that advances by one millisecond each time it is read: every gap between marks is 1 ms.
    let t = 0;
    const profile = profileForward(classifier, randomInput(24 * 24 * 3, 1), 3, () => t++);
    expect(profile.layers.map((l) => l.label)).toEqual(["conv1", "lrn@1", "maxpool@2", "conv2", "maxpool@4", "dense"]);
    expect(profile.layers.every((l) => l.ms === 1)).toBe(true);
    expect(profile.total_ms).toBe(6);
    const work = layerWork(LOGIT_LAYERS, pkg.manifest.input);
    const convMacs = work[0]!.macs + work[3]!.macs;
    expect(profile.conv).toEqual({ macs: convMacs, ms: 2, gmacs: convMacs / 2 / 1e6 });
    expect(profile.other_ms).toBe(3);
    const denseBytes = work.filter((w) => w.op === "dense").reduce((s, w) => s + w.weightBytes, 0);
    expect(profile.dense).toEqual({ macs: denseBytes, ms: 1, weight_bytes: denseBytes, gb_per_s: denseBytes / 1e6 });
    classifier.dispose();
  });

  it("traces the same logits as a plain forward pass", async () => {
    const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS, seed: 5 });
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    const x = randomInput(24 * 24 * 3, 2);
    const marks: number[] = [];
    const traced = classifier.traceForward(x, (i) => marks.push(i));
    expect(marks).toEqual([0, 1, 2, 3, 4, 8]);
    expect(Array.from(traced)).toEqual(Array.from(classifier.forward([x])[0]!));
    classifier.dispose();
  });

  it("refuses a package whose convolutions run on tfjs, which reports no layer", async () => {
    const pkg = await makeTinyPackage({ layers: LOGIT_LAYERS, convolutions: "fp32" });
    const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
    expect(() => profileForward(classifier, randomInput(24 * 24 * 3, 1), 1, () => 0)).toThrow(/run on tfjs/);
    classifier.dispose();
  });
});
