/**
 * What each layer of a manifest's network costs, counted from the layer list alone: multiply-adds for the
 * convolutions and dense layers, and the bytes of int8 weight a dense layer reads a pass. The profiler
 * (profile.ts) divides these by measured times to get GMAC/s and GB/s; nothing here runs the network.
 */
import type { InputShape, Layer } from "../package/manifest";
import { outSize } from "./network";

export interface LayerWork {
  /** Index in the manifest's layer list. */
  index: number;
  op: Layer["op"];
  /** The layer's name where the manifest gives one (conv2d, dense), else `op` and its index, e.g. "lrn@2". */
  label: string;
  /** Multiply-adds for one image: output values times the inputs each reads (0 for LRN, pooling and the rest). */
  macs: number;
  /** Bytes of int8 weight read for one image (dense layers only; a conv's are few and stay in cache). */
  weightBytes: number;
}

/**
 * One entry per layer, its shapes from the network's own rule (network.ts `outSize`, which throws where a
 * window does not fit); check the list with the manifest first.
 */
export function layerWork(layers: readonly Layer[], input: InputShape): LayerWork[] {
  let [h, w, c] = [input.height, input.width, input.channels];
  let flat = 0;
  return layers.map((layer, index) => {
    const entry = { index, op: layer.op, label: "name" in layer ? layer.name : `${layer.op}@${index}`, macs: 0, weightBytes: 0 };
    if (layer.op === "conv2d") {
      const where = `layer ${index} (conv2d)`;
      const ho = outSize(h, layer.kernel, layer.stride, layer.padding, where);
      const wo = outSize(w, layer.kernel, layer.stride, layer.padding, where);
      entry.macs = ho * wo * layer.filters * layer.kernel * layer.kernel * (c / layer.groups);
      [h, w, c] = [ho, wo, layer.filters];
    } else if (layer.op === "maxpool") {
      h = outSize(h, layer.window, layer.stride, 0, `layer ${index} (maxpool)`);
      w = outSize(w, layer.window, layer.stride, 0, `layer ${index} (maxpool)`);
    } else if (layer.op === "flatten") {
      flat = h * w * c;
    } else if (layer.op === "dense") {
      entry.macs = entry.weightBytes = flat * layer.units;
      flat = layer.units;
    }
    return entry;
  });
}
