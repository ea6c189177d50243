/**
 * Accounts for the WebAssembly memory the image decoders hold. Workers allow 128 MB per isolate for the JS
 * heap and every wasm memory together, and local workerd does not enforce it (docs/platform-notes.md, "WebAssembly in a Worker"), so
 * the benchmark adds these figures to the isolate's memory itself.
 */
const live = new Set<WebAssembly.Memory>();
let peak = 0;

/** Counts `memory` until the returned release function is called (when its instance is dropped). */
export function trackDecoderMemory(memory: WebAssembly.Memory): () => void {
  live.add(memory);
  return () => {
    peak = Math.max(peak, memory.buffer.byteLength); // a wasm memory only grows: its size now is its peak
    live.delete(memory);
  };
}

/** Bytes held right now by decoder wasm memories; 0 between decodes, since each decode drops its instance. */
export function decoderMemoryBytes(): number {
  let total = 0;
  for (const m of live) total += m.buffer.byteLength;
  return total;
}

/** The largest single decoder memory seen since the isolate started (or the last reset). */
export function decoderMemoryPeakBytes(): number {
  return Math.max(peak, decoderMemoryBytes());
}

export function resetDecoderMemoryPeak(): void {
  peak = 0;
}
