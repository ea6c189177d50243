/**
 * What each layer of a manifest's network costs, counted from the layer list alone: multiply-adds for the
 * convolutions and dense layers, and the bytes of int8 weight a dense layer reads a pass. The profiler
 * (profile.ts) divides these by measured times to get GMAC/s and GB/s; nothing here runs the network.
 */
import type { InputShape, Layer } from "../package/manifest";

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
 * One entry per layer. Shapes follow the same rules as the network's (floor((n + 2p - k) / s) + 1); a list
 * the network would refuse gives nonsense here, so check it with the manifest first.
 */
export function layerWork(layers: readonly Layer[], input: InputShape): LayerWork[] {
  let [h, w, c] = [input.height, input.width, input.channels];
  let flat = 0;
  return layers.map((layer, index) => {
    const entry = { index, op: layer.op, label: "name" in layer ? layer.name : `${layer.op}@${index}`, macs: 0, weightBytes: 0 };
    if (layer.op === "conv2d") {
      const ho = Math.floor((h + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      const wo = Math.floor((w + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      entry.macs = ho * wo * layer.filters * layer.kernel * layer.kernel * (c / layer.groups);
      [h, w, c] = [ho, wo, layer.filters];
    } else if (layer.op === "maxpool") {
      h = Math.floor((h - layer.window) / layer.stride) + 1;
      w = Math.floor((w - layer.window) / layer.stride) + 1;
    } else if (layer.op === "flatten") {
      flat = h * w * c;
    } else if (layer.op === "dense") {
      entry.macs = entry.weightBytes = flat * layer.units;
      flat = layer.units;
    }
    return entry;
  });
}
