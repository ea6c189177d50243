/**
 * Where a forward pass's time goes, layer by layer, for the benchmark (bench/worker.ts, `npm run bench`);
 * never on the request path. The classifier calls back after each feature layer and after the dense layers
 * (Classifier.traceForward); the gaps between calls are the layers' times. Work counts come from
 * layer-work.ts, so each convolution gets GMAC/s and the dense layers GB/s of weights read.
 *
 * Reading the clock between layers costs a few microseconds a call, against 18 ms of convolutions on
 * AlexNet-224: the per-layer times add up to the whole pass's within that (the benchmark reports both).
 * Local workerd's clock advances during compute; a deployed Worker's would not, which is why this is a
 * benchmark tool and not a runtime feature.
 */
import type { Classifier } from "./classifier";
import { layerWork } from "./layer-work";

export interface LayerTime {
  label: string;
  op: string;
  macs: number;
  /** Median over the passes, in ms. */
  ms: number;
  /** macs / ms, in 1e9 multiply-adds a second; null for layers without multiply-adds. */
  gmacs: number | null;
}

export interface ForwardProfile {
  passes: number;
  /** The layers in the order they ran; the dense layers as one entry ("dense"), as they run. */
  layers: LayerTime[];
  /** All convolutions together: the sum of their median times, and their multiply-adds over it. */
  conv: { macs: number; ms: number; gmacs: number };
  /** LRN and pooling together. */
  other_ms: number;
  /** The dense layers: time, int8 weight bytes read, and the rate they were read at (1e9 bytes a second). */
  dense: { macs: number; ms: number; weight_bytes: number; gb_per_s: number };
  /** Median of the whole pass, measured around it (not the sum of the parts). */
  total_ms: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Runs `passes` forward passes on `input` (after the classifier's own warm-up at load) and returns the
 * median time of each layer. `now` is the clock (performance.now in workerd). Fails for a package whose
 * convolutions run on tfjs, which reports no layer.
 */
export function profileForward(classifier: Classifier, input: Float32Array, passes: number, now: () => number): ForwardProfile {
  const { manifest } = classifier;
  const work = layerWork(manifest.layers, manifest.input);
  const denseWork = work.filter((w) => w.op === "dense");
  const times = new Map<number, number[]>();
  const totals: number[] = [];
  for (let p = 0; p < passes; p++) {
    const start = now();
    let last = start;
    classifier.traceForward(input, (index) => {
      const t = now();
      const list = times.get(index) ?? [];
      list.push(t - last);
      times.set(index, list);
      last = t;
    });
    totals.push(last - start);
  }
  if (![...times.keys()].some((i) => work[i]?.op === "conv2d")) {
    throw new Error(`${manifest.id}: its convolutions report no layer times (they run on tfjs)`);
  }
  const layers: LayerTime[] = [...times.entries()].map(([index, list]) => {
    const w = work[index]!;
    const dense = w.op === "dense";
    const macs = dense ? denseWork.reduce((sum, d) => sum + d.macs, 0) : w.macs;
    const ms = median(list);
    return { label: dense ? "dense" : w.label, op: w.op, macs, ms, gmacs: macs > 0 ? macs / ms / 1e6 : null };
  });
  const convs = layers.filter((l) => l.op === "conv2d");
  const convMacs = convs.reduce((sum, l) => sum + l.macs, 0);
  const convMs = convs.reduce((sum, l) => sum + l.ms, 0);
  const dense = layers.find((l) => l.op === "dense")!;
  const weightBytes = denseWork.reduce((sum, d) => sum + d.weightBytes, 0);
  return {
    passes,
    layers,
    conv: { macs: convMacs, ms: convMs, gmacs: convMacs / convMs / 1e6 },
    other_ms: layers.filter((l) => l.op === "lrn" || l.op === "maxpool").reduce((sum, l) => sum + l.ms, 0),
    dense: { macs: dense.macs, ms: dense.ms, weight_bytes: weightBytes, gb_per_s: weightBytes / dense.ms / 1e6 },
    total_ms: median(totals),
  };
}
