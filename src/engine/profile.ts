/**
 * Where a forward pass's time goes, layer by layer, for the benchmark (bench/worker.ts, `npm run bench`);
 * never on the request path. The classifier calls back after each feature layer and after the dense layers
 * (Classifier.traceForward); the gaps between calls are the layers' times. Work counts come from
 * layer-work.ts, so each convolution gets GMAC/s and the dense layers GB/s of weights read.
 *
 * Local workerd's clock advances during compute but only in whole milliseconds (a deployed Worker's would
 * not advance at all, which is why this is a benchmark tool and not a runtime feature). A layer of 2 ms
 * measured once reads 1, 2 or 3; so each layer's time is the mean of its gaps over many passes, not a median:
 * the layers' boundaries fall at every phase of the clock's tick, the rounding errors average out, and the
 * means of consecutive gaps add up exactly to the mean of the whole pass.
 */
import type { Classifier } from "./classifier";
import { layerWork } from "./layer-work";

export interface LayerTime {
  label: string;
  op: string;
  macs: number;
  /** Mean over the passes, in ms (see above for why not the median). */
  ms: number;
  /** macs / ms, in 1e9 multiply-adds a second; null for layers without multiply-adds. */
  gmacs: number | null;
}

export interface ForwardProfile {
  passes: number;
  /** The layers in the order they ran; the dense layers as one entry ("dense"), as they run. */
  layers: LayerTime[];
  /** All convolutions together: the sum of their mean times, and their multiply-adds over it. */
  conv: { macs: number; ms: number; gmacs: number };
  /** LRN and pooling together. */
  other_ms: number;
  /** The dense layers: time, int8 weight bytes read, and the rate they were read at (1e9 bytes a second). */
  dense: { macs: number; ms: number; weight_bytes: number; gb_per_s: number };
  /** Mean of the whole pass, first mark to last (the sum of the parts). */
  total_ms: number;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Runs `passes` forward passes on `input` (after the classifier's own warm-up at load) and returns the
 * mean time of each layer. `now` is the clock (performance.now in workerd). Fails for a package whose
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
    const ms = mean(list);
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
    total_ms: mean(totals),
  };
}
