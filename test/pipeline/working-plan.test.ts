import { describe, expect, it } from "vitest";
import { MAX_IMAGE_WORKING_BYTES } from "../../src/config";
import { workingPlan } from "../../src/pipeline/working-plan";

describe("a classify request batches its dense layers only where its memory share allows", () => {
  it("holds one image's working memory for a single image, which has nothing to batch", () => {
    expect(workingPlan([5_000_000], 36_864)).toEqual({ bytes: 5_000_000, batched: false });
  });

  it("counts the features of the images decoded before each one when it batches", () => {
    // The third image is decoded while two images' features wait for the dense pass.
    expect(workingPlan([1_000_000, 900_000, 1_200_000], 36_864)).toEqual({ bytes: 1_200_000 + 2 * 36_864, batched: true });
  });

  it("classifies image by image when keeping the features would pass what one image may use", () => {
    const big = MAX_IMAGE_WORKING_BYTES - 10_000;
    expect(workingPlan([100_000, big], 36_864)).toEqual({ bytes: big, batched: false });
    expect(workingPlan([big, 100_000], 36_864)).toEqual({ bytes: big, batched: true });
  });
});
