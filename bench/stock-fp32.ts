/**
 * The baseline the benchmark compares against: the same network as stock TensorFlow.js would run it,
 * every layer fp32 on tfjs-backend-wasm (XNNPACK), dense layers as tf.matMul with [in, out] weights
 * (the layout XNNPACK's fully-connected path wants). Built from the same package bytes.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Manifest } from "../src/package/manifest";
import { parseHeader } from "../src/package/safetensors";

export function buildStockNetwork(manifest: Manifest, file: Uint8Array): (input: Float32Array) => Float32Array {
  const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const dataStart = 8 + headerLength;
  const tensors = new Map(parseHeader(new TextDecoder().decode(file.subarray(8, dataStart))).map((t) => [t.name, t]));
  const bytes = (name: string) => {
    const t = tensors.get(name)!;
    return file.slice(dataStart + t.begin, dataStart + t.end);
  };
  const dequantize = (name: string, outputs: number, outputAxisLast: boolean) => {
    const q = new Int8Array(bytes(`${name}.weight`).buffer);
    const scale = new Float32Array(bytes(`${name}.scale`).buffer);
    const per = q.length / outputs;
    return Float32Array.from(q, (v, i) => v * scale[outputAxisLast ? i % outputs : Math.floor(i / per)]!);
  };

  let channels = manifest.input.channels;
  const steps: ((x: tf.Tensor) => tf.Tensor)[] = [];
  for (const layer of manifest.layers) {
    if (layer.op === "conv2d") {
      const w = dequantize(layer.name, layer.filters, true);
      const perGroup = layer.filters / layer.groups;
      const cin = channels / layer.groups;
      const filters: tf.Tensor4D[] = [];
      const biases: tf.Tensor1D[] = [];
      const bias = new Float32Array(bytes(`${layer.name}.bias`).buffer);
      for (let g = 0; g < layer.groups; g++) {
        const part = new Float32Array(w.length / layer.groups);
        for (let t = 0; t < w.length / layer.filters; t++)
          part.set(w.subarray(t * layer.filters + g * perGroup, t * layer.filters + (g + 1) * perGroup), t * perGroup);
        filters.push(tf.tensor4d(part, [layer.kernel, layer.kernel, cin, perGroup]));
        biases.push(tf.tensor1d(bias.subarray(g * perGroup, (g + 1) * perGroup)));
      }
      channels = layer.filters;
      steps.push((x) => {
        const parts: tf.Tensor4D[] = layer.groups === 1 ? [x as tf.Tensor4D] : tf.split(x as tf.Tensor4D, layer.groups, 3);
        const outs = parts.map((p, g) =>
          tf.fused.conv2d({
            x: p,
            filter: filters[g]!,
            strides: layer.stride,
            pad: layer.padding,
            bias: biases[g],
            activation: layer.activation === "relu" ? "relu" : "linear",
          }),
        );
        return outs.length === 1 ? outs[0]! : tf.concat(outs, 3);
      });
    } else if (layer.op === "lrn") {
      steps.push((x) => tf.localResponseNormalization(x as tf.Tensor4D, (layer.size - 1) / 2, layer.k, layer.alpha, layer.beta));
    } else if (layer.op === "maxpool") {
      steps.push((x) => tf.maxPool(x as tf.Tensor4D, layer.window, layer.stride, "valid"));
    } else if (layer.op === "flatten") {
      steps.push((x) => tf.reshape(x, [x.shape[0]!, -1]));
    } else if (layer.op === "dense") {
      const w = dequantize(layer.name, layer.units, false); // [units][in]
      const k = w.length / layer.units;
      const transposed = new Float32Array(w.length); // -> [in][units]
      for (let o = 0; o < layer.units; o++) for (let i = 0; i < k; i++) transposed[i * layer.units + o] = w[o * k + i]!;
      const weight = tf.tensor2d(transposed, [k, layer.units]);
      const bias = tf.tensor1d(new Float32Array(bytes(`${layer.name}.bias`).buffer));
      steps.push((x) =>
        tf.fused.matMul({ a: x as tf.Tensor2D, b: weight, bias, activation: layer.activation === "relu" ? "relu" : "linear" }),
      );
    } else if (layer.op === "softmax") {
      steps.push((x) => tf.softmax(x));
    }
  }
  const { height, width, channels: c } = manifest.input;
  return (input) =>
    tf.tidy(() => {
      let x: tf.Tensor = tf.tensor4d(input, [1, height, width, c]);
      for (const step of steps) x = step(x);
      return x.dataSync() as Float32Array;
    });
}
