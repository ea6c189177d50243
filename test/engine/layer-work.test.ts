import { describe, expect, it } from "vitest";
import { layerWork } from "../../src/engine/layer-work";
import type { Layer } from "../../src/package/manifest";

// AlexNet at 224x224x3 in two layouts. The counts below are worked by hand from the shapes
// (out_h * out_w * filters * k * k * in_channels / groups), not by the code under test.
const conv = (name: string, filters: number, kernel: number, stride: number, padding: number, groups = 1): Layer => ({
  op: "conv2d",
  name,
  filters,
  kernel,
  stride,
  padding,
  groups,
  activation: "relu",
});
const pool: Layer = { op: "maxpool", window: 3, stride: 2 };
const lrn: Layer = { op: "lrn", size: 5, alpha: 1e-4, beta: 0.75, k: 2 };
const head: Layer[] = [
  { op: "flatten" },
  { op: "dense", name: "fc6", units: 4096, activation: "relu" },
  { op: "dense", name: "fc7", units: 4096, activation: "relu" },
  { op: "dense", name: "fc8", units: 1000, activation: "none" },
  { op: "softmax" },
];
const input = { height: 224, width: 224, channels: 3 };

describe("layerWork", () => {
  it("counts torchvision's AlexNet: 655,566,528 conv multiply-adds, 58,621,952 dense", () => {
    const layers = [
      conv("conv1", 64, 11, 4, 2),
      pool,
      conv("conv2", 192, 5, 1, 2),
      pool,
      conv("conv3", 384, 3, 1, 1),
      conv("conv4", 256, 3, 1, 1),
      conv("conv5", 256, 3, 1, 1),
      pool,
      ...head,
    ];
    const work = layerWork(layers, input);
    const convs = work.filter((w) => w.op === "conv2d");
    expect(convs.map((w) => w.macs)).toEqual([70_276_800, 223_948_800, 112_140_288, 149_520_384, 99_680_256]);
    expect(convs.reduce((s, w) => s + w.macs, 0)).toBe(655_566_528);
    const dense = work.filter((w) => w.op === "dense");
    expect(dense.map((w) => w.macs)).toEqual([9216 * 4096, 4096 * 4096, 4096 * 1000]);
    expect(dense.map((w) => w.weightBytes)).toEqual(dense.map((w) => w.macs));
    expect(work.filter((w) => w.op !== "conv2d" && w.op !== "dense").every((w) => w.macs === 0 && w.weightBytes === 0)).toBe(true);
  });

  it("halves the grouped layers of the paper's two-tower layout (1,076,634,144 one tower; 665,784,864 in two)", () => {
    const paper = (groups: number) => [
      conv("conv1", 96, 11, 4, 2),
      lrn,
      pool,
      conv("conv2", 256, 5, 1, 2, groups),
      lrn,
      pool,
      conv("conv3", 384, 3, 1, 1),
      conv("conv4", 384, 3, 1, 1, groups),
      conv("conv5", 256, 3, 1, 1, groups),
      pool,
      ...head,
    ];
    const total = (layers: Layer[]) => layerWork(layers, input).reduce((s, w) => s + (w.op === "conv2d" ? w.macs : 0), 0);
    expect(total(paper(1))).toBe(1_076_634_144);
    expect(total(paper(2))).toBe(665_784_864);
  });

  it("labels layers by their name, or by op and index where the manifest gives none", () => {
    const work = layerWork([conv("c", 4, 3, 1, 1), lrn, pool, ...head], { height: 8, width: 8, channels: 3 });
    expect(work.map((w) => w.label)).toEqual(["c", "lrn@1", "maxpool@2", "flatten@3", "fc6", "fc7", "fc8", "softmax@7"]);
    // 8x8 -> conv keeps 8x8x4 -> pool 3/2 gives 3x3x4 = 36 features into fc6.
    expect(work[4]!.macs).toBe(36 * 4096);
  });
});
