import { describe, expect, it } from "vitest";
import defaultManifest from "../../model/alexnet-fmnist-64-v8/manifest.json";
import defaultWeights from "../../model/alexnet-fmnist-64-v8/weights.safetensors";
import { loadClassifier } from "../../src/engine/classifier";
import { estimateLoadBytes } from "../../src/engine/load-memory";
import { parseManifest } from "../../src/package/manifest";
import { makeTinyPackage, streamOf, TINY_LAYERS } from "../support/tiny-package";

/** The estimate's fixed part: the weights stream's 1 MiB read buffer, which a tiny model's load never fills. */
const READ_BUFFER_BYTES = 1 << 20;

describe("the load memory estimate", () => {
  it("is no less than what a load holds at its peak and keeps resident, for models with and without LRN", async () => {
    const variants = [TINY_LAYERS, TINY_LAYERS.filter((l) => l.op !== "lrn")];
    for (const [i, layers] of variants.entries()) {
      const pkg = await makeTinyPackage({ id: `estimate-${i}-v1`, layers, seed: i + 1 });
      const estimate = await estimateLoadBytes(pkg.manifest, { alongside: true });
      const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
      expect(classifier.loadPeakBytes).toBeLessThanOrEqual(estimate);
      expect(classifier.residentBytes).toBeLessThanOrEqual(estimate);
      // Past its fixed read buffer, a tiny model's estimate is whole wasm pages: at most 3x what it uses.
      expect(estimate - READ_BUFFER_BYTES).toBeLessThanOrEqual(3 * classifier.loadPeakBytes);
      classifier.dispose();
    }
  });

  it("covers the shipped model's load peak by no more than a quarter (1.14x measured), so the ledger does not refuse a model that fits", async () => {
    const manifest = parseManifest(defaultManifest);
    const estimate = await estimateLoadBytes(manifest, { alongside: true });
    const classifier = await loadClassifier(manifest, streamOf(new Uint8Array(defaultWeights)));
    expect(classifier.loadPeakBytes).toBeLessThanOrEqual(estimate);
    expect(estimate).toBeLessThanOrEqual(1.25 * classifier.loadPeakBytes);
    classifier.dispose();
  });
});
