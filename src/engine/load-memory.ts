/**
 * How much memory loading a model will take, from its manifest alone, before a byte of weights is read:
 * the model store reserves this in the isolate's memory budget, then shrinks the reservation to the
 * classifier's `residentBytes` once the load is done.
 *
 * Mirrors what the engine allocates (network.ts, dense-int8.ts, lrn.ts), rounded up where it cannot be
 * exact: the peak of a load is the dense kernel's memory (laid out once), the LRN kernel's, the tfjs wasm
 * heap grown for the conv weights (tfjs's transposed copy plus XNNPACK's packed copy, in fp32), and the JS
 * buffers that stage the int8 conv weights and one fp32 layer while it is uploaded.
 */
import type { Manifest } from "../package/manifest";
import { RESERVE_FACTOR } from "./features-tfjs";
import { initialHeapBytes, useWasmBackend, wasmHeapBytes } from "./tfjs-wasm-backend";

const WASM_PAGE = 65536;
/** The weights stream's one read buffer (src/model/store.ts). */
const READ_BUFFER_BYTES = 1 << 20;
/**
 * Emscripten grows a full heap by at least a fifth of its size, so a small allocation can cost that much
 * (tfjs-backend-wasm is built with its default growth policy).
 */
const HEAP_GROWTH_STEP = 0.2;

const pages = (bytes: number) => Math.ceil(bytes / WASM_PAGE) * WASM_PAGE;
const align16 = (n: number) => (n + 15) & ~15;

/**
 * Bytes the load of `manifest` may hold at its peak, counting the whole tfjs heap as `residentBytes` does.
 * `alongside`: the models loaded now stay resident, so the conv weights need new heap; otherwise they are
 * freed first, and the heap, which never shrinks, only needs to be as large as a fresh one plus this model.
 */
export async function estimateLoadBytes(manifest: Manifest, options: { alongside: boolean } = { alongside: true }): Promise<number> {
  const int8Convolutions = manifest.quantization.convolutions === "int8";
  // The heap's current size is part of the figure, as in residentBytes; int8 convolutions never start tfjs.
  if (!int8Convolutions) await useWasmBackend();
  let [h, w, c] = [manifest.input.height, manifest.input.width, manifest.input.channels];
  let flat = 0;
  let denseBytes = 0;
  let widest = 0;
  let lrnValues = 0;
  let lrnChannels = 0;
  let lrnSize = 0;
  let convFp32 = 0;
  let largestFp32 = 0;
  let stagedConv = 0;
  let largestActivation = h * w * c;
  let largestPadded = 0;
  const out = (size: number, window: number, stride: number, padding: number) => Math.floor((size + 2 * padding - window) / stride) + 1;
  for (const layer of manifest.layers) {
    if (layer.op === "conv2d") {
      const weights = layer.kernel * layer.kernel * (c / layer.groups) * layer.filters;
      convFp32 += 4 * weights;
      largestFp32 = Math.max(largestFp32, 4 * weights);
      stagedConv += weights + 8 * layer.filters;
      const groupChannels = Math.ceil(c / layer.groups / 4) * 4; // the int8 kernel pads channels to 4
      largestPadded = Math.max(largestPadded, layer.groups * (h + 2 * layer.padding) * (w + 2 * layer.padding) * groupChannels);
      [h, w, c] = [out(h, layer.kernel, layer.stride, layer.padding), out(w, layer.kernel, layer.stride, layer.padding), layer.filters];
      largestActivation = Math.max(largestActivation, h * w * c);
    } else if (layer.op === "maxpool") {
      [h, w] = [out(h, layer.window, layer.stride, 0), out(w, layer.window, layer.stride, 0)];
    } else if (layer.op === "lrn") {
      lrnValues = Math.max(lrnValues, h * w * c);
      lrnChannels = Math.max(lrnChannels, c);
      lrnSize = Math.max(lrnSize, layer.size);
    } else if (layer.op === "flatten") {
      flat = h * w * c;
      widest = flat;
    } else if (layer.op === "dense") {
      denseBytes += align16(layer.units * flat) + 2 * align16(layer.units * 4);
      widest = Math.max(widest, layer.units);
      flat = layer.units;
    }
  }
  const dense = pages(denseBytes + 2 * align16(widest * 4) + align16(widest * 2));
  const lrn = pages(WASM_PAGE + 4 * Math.max(1, lrnValues) + 4 * (lrnChannels + lrnSize + 4));
  if (int8Convolutions) {
    // features-int8.ts: packed weights (output channels padded to 8, input channels to 4: at most ~2x the
    // int8 bytes for AlexNet's odd shapes, counted 2x), their per-row sums, scales and biases, two float
    // activation buffers, the quantized padded input (up to 2 bytes a value); the staged JS copies on top.
    const features = pages(2 * stagedConv + 8 * largestActivation + 2 * largestPadded + 4 * WASM_PAGE);
    return Math.ceil(dense + lrn + features + stagedConv + READ_BUFFER_BYTES);
  }
  const heapNow = wasmHeapBytes();
  const heapGrowth = Math.max(RESERVE_FACTOR * 2 * convFp32 + largestFp32, HEAP_GROWTH_STEP * heapNow);
  const heap = options.alongside ? heapNow + heapGrowth : Math.max(heapNow, initialHeapBytes() + heapGrowth);
  const staging = stagedConv + largestFp32 + READ_BUFFER_BYTES;
  return Math.ceil(dense + lrn + heap + staging);
}
