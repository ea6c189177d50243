/**
 * Builds small model packages in the test itself: random (seeded) fp32 weights for a tiny network with
 * every layer type, quantized and written exactly as docs/model-package.md says, plus the fp32 weights
 * so a test can compare the engine against an independent reference forward pass.
 */
import { MANIFEST_FORMAT, type Layer, type Manifest } from "../../src/package/manifest";
import { mulberry32 } from "./random";

export { mulberry32 };

export interface FloatWeights {
  [name: string]: { weight: Float32Array; bias: Float32Array; shape: number[] };
}

export interface TinyPackage {
  manifest: Manifest;
  weights: Uint8Array;
  /** The fp32 weights before quantization, in package layout (HWIO / [units][in]). */
  fp32: FloatWeights;
  /** The dequantized weights the engine actually uses. */
  dequantized: FloatWeights;
}

/** A 24x24x3 network: conv (groups 1), lrn, maxpool, conv (groups 2), maxpool, flatten, 3 dense, softmax. */
export const TINY_LAYERS: Layer[] = [
  { op: "conv2d", name: "conv1", filters: 8, kernel: 5, stride: 2, padding: 2, groups: 1, activation: "relu" },
  // A large alpha so that a wrong window or constant shows; the paper's 1e-4 barely changes values.
  { op: "lrn", size: 5, alpha: 0.05, beta: 0.75, k: 1 },
  { op: "maxpool", window: 3, stride: 2 },
  { op: "conv2d", name: "conv2", filters: 12, kernel: 3, stride: 1, padding: 1, groups: 2, activation: "relu" },
  { op: "maxpool", window: 2, stride: 2 },
  { op: "flatten" },
  { op: "dense", name: "fc6", units: 40, activation: "relu" },
  { op: "dense", name: "fc7", units: 24, activation: "relu" },
  { op: "dense", name: "fc8", units: 5, activation: "none" },
  { op: "softmax" },
];

export const TINY_LABELS = ["circle", "square", "triangle", "star", "cross"];

export async function makeTinyPackage(
  options: { id?: string; seed?: number; layers?: Layer[]; size?: number; denseFirst?: boolean; convolutions?: "int8" | "fp32" } = {},
): Promise<TinyPackage> {
  const random = mulberry32(options.seed ?? 1);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const layers = options.layers ?? TINY_LAYERS;
  const size = options.size ?? 24;
  let shape = [size, size, 3];
  const fp32: FloatWeights = {};
  for (const layer of layers) {
    if (layer.op === "conv2d") {
      const cin = shape[2]! / layer.groups;
      const w = new Float32Array(layer.kernel * layer.kernel * cin * layer.filters).map(
        () => gauss() * Math.sqrt(2 / (layer.kernel * layer.kernel * cin)),
      );
      const b = new Float32Array(layer.filters).map(() => gauss() * 0.1);
      fp32[layer.name] = { weight: w, bias: b, shape: [layer.kernel, layer.kernel, cin, layer.filters] };
      const o = (s: number) => Math.floor((s + 2 * layer.padding - layer.kernel) / layer.stride) + 1;
      shape = [o(shape[0]!), o(shape[1]!), layer.filters];
    } else if (layer.op === "maxpool") {
      const o = (s: number) => Math.floor((s - layer.window) / layer.stride) + 1;
      shape = [o(shape[0]!), o(shape[1]!), shape[2]!];
    } else if (layer.op === "flatten") {
      shape = [shape.reduce((a, b) => a * b, 1)];
    } else if (layer.op === "dense") {
      const k = shape[0]!;
      const w = new Float32Array(layer.units * k).map(() => gauss() * Math.sqrt(2 / k));
      const b = new Float32Array(layer.units).map(() => gauss() * 0.1);
      fp32[layer.name] = { weight: w, bias: b, shape: [layer.units, k] };
      shape = [layer.units];
    }
  }

  const tensors: { name: string; dtype: "I8" | "F32"; shape: number[]; data: Uint8Array }[] = [];
  const dequantized: FloatWeights = {};
  for (const layer of layers) {
    if (layer.op !== "conv2d" && layer.op !== "dense") continue;
    const { weight, bias, shape: wShape } = fp32[layer.name]!;
    const outputs = layer.op === "conv2d" ? layer.filters : layer.units;
    // Per output channel: the last axis for HWIO conv weights, the first for [units][in] dense weights.
    const index =
      layer.op === "conv2d" ? (o: number, j: number) => j * outputs + o : (o: number, j: number) => o * (weight.length / outputs) + j;
    const perOutput = weight.length / outputs;
    const scale = new Float32Array(outputs);
    const q = new Int8Array(weight.length);
    const deq = new Float32Array(weight.length);
    for (let o = 0; o < outputs; o++) {
      let max = 0;
      for (let j = 0; j < perOutput; j++) max = Math.max(max, Math.abs(weight[index(o, j)]!));
      scale[o] = max > 0 ? max / 127 : 1;
      for (let j = 0; j < perOutput; j++) {
        const v = Math.max(-127, Math.min(127, Math.round(weight[index(o, j)]! / scale[o]!)));
        q[index(o, j)] = v;
        deq[index(o, j)] = v * scale[o]!;
      }
    }
    dequantized[layer.name] = { weight: deq, bias, shape: wShape };
    tensors.push({ name: `${layer.name}.weight`, dtype: "I8", shape: wShape, data: new Uint8Array(q.buffer) });
    tensors.push({ name: `${layer.name}.scale`, dtype: "F32", shape: [outputs], data: new Uint8Array(scale.buffer) });
    tensors.push({ name: `${layer.name}.bias`, dtype: "F32", shape: [outputs], data: new Uint8Array(bias.buffer.slice(0)) });
  }
  // The exporter writes tensors in layer order; a package may order them otherwise.
  const weights = writeSafetensors(options.denseFirst ? [...tensors].reverse() : tensors);
  const labels = Array.from({ length: fp32[lastDense(layers)]!.shape[0]! }, (_, i) => TINY_LABELS[i] ?? `class-${i}`);
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    id: options.id ?? "tiny-test-v1",
    input: { height: size, width: size, channels: 3 },
    preprocess: {
      color: "rgb",
      background: [255, 255, 255],
      resize: { shorter_side: size, filter: "bilinear" },
      crop: { mode: "center", height: size, width: size },
      scale: 255,
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
    },
    layers,
    labels,
    weights: { file: "weights.safetensors", bytes: weights.length, sha256: await sha256Hex(weights) },
    quantization: {
      weights: "int8-symmetric-per-output-channel",
      convolutions: options.convolutions ?? "int8",
      conv_activations: "7-bit-per-tensor-min-max",
    },
    metrics: {},
    training: { arch: "tiny-test" },
  };
  return { manifest, weights, fp32, dequantized };
}

const lastDense = (layers: Layer[]) => (layers.filter((l) => l.op === "dense").at(-1) as { name: string }).name;

export function writeSafetensors(tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { writer: "alexnet-edge tests" } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // the format pads the header with spaces
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Stores a package in R2 under its id and, unless told not to, points the deployment at it. */
export async function publishToBucket(
  bucket: R2Bucket,
  pkg: { manifest: Manifest; weights: Uint8Array },
  options: { point?: boolean } = {},
): Promise<void> {
  const id = pkg.manifest.id;
  await bucket.put(`models/${id}/weights.safetensors`, pkg.weights);
  await bucket.put(`models/${id}/manifest.json`, JSON.stringify(pkg.manifest));
  if (options.point !== false) await bucket.put("models/current.json", JSON.stringify({ id }));
}

/** The bytes as the engine receives a weights file: in chunks, one reused buffer. */
export async function* streamOf(bytes: Uint8Array, chunk = 997): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(chunk);
  for (let at = 0; at < bytes.length; at += chunk) {
    const part = bytes.subarray(at, at + chunk);
    buffer.set(part);
    yield buffer.subarray(0, part.length);
  }
}

export function randomInput(size: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  return new Float32Array(size).map(() => random() * 4 - 2);
}
