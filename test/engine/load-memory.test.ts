import { describe, expect, it } from "vitest";
import { loadClassifier } from "../../src/engine/classifier";
import { estimateLoadBytes } from "../../src/engine/load-memory";
import { TINY_LAYERS, makeTinyPackage, streamOf } from "../support/tiny-package";

describe("the load memory estimate", () => {
  it("is no less than what a load holds at its peak and keeps resident, for models with and without LRN", async () => {
    const variants = [TINY_LAYERS, TINY_LAYERS.filter((l) => l.op !== "lrn")];
    for (const [i, layers] of variants.entries()) {
      const pkg = await makeTinyPackage({ id: `estimate-${i}-v1`, layers, seed: i + 1 });
      const estimate = await estimateLoadBytes(pkg.manifest, { alongside: true });
      const classifier = await loadClassifier(pkg.manifest, streamOf(pkg.weights));
      expect(classifier.loadPeakBytes).toBeLessThanOrEqual(estimate);
      expect(classifier.residentBytes).toBeLessThanOrEqual(estimate);
      classifier.dispose();
    }
  });
});
