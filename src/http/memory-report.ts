/**
 * The isolate's memory as the Worker itself can count it, for /readyz and the memory benchmark. V8's inspector
 * sees the JS heap and ArrayBuffers but not wasm memories (docs/memory.md), so the engine's and the decoders'
 * own counts are added from outside: together with the inspector's figures they make the isolate's total.
 */
import { decoderMemoryBytes, decoderMemoryPeakBytes, resetDecoderMemoryPeak } from "../image";
import type { MemoryBudget } from "../memory/budget";

export interface MemoryReport {
  /** wasm memories the served model holds: tfjs's heap (conv weights, activations) and our kernels'. */
  model_wasm_bytes: number;
  /** Image decoders' wasm memory held right now (0 between decodes: each decode drops its instance). */
  decoder_wasm_bytes: number;
  /**
   * The largest single decoder wasm memory since the previous report (read and reset, so that a caller polling
   * /readyz sees each stretch's own peak). A decode is synchronous: one decoder memory at most is live at once.
   */
  decoder_wasm_peak_bytes: number;
  /** What the memory ledger has handed out right now, and its capacity. */
  reserved_bytes: number;
  budget_bytes: number;
}

/** `model` is the served classifier; its residentBytes is the tfjs wasm heap plus its own kernel memories. */
export function memoryReport(model: { readonly residentBytes: number }, budget: MemoryBudget): MemoryReport {
  const report = {
    model_wasm_bytes: model.residentBytes,
    decoder_wasm_bytes: decoderMemoryBytes(),
    decoder_wasm_peak_bytes: decoderMemoryPeakBytes(),
    reserved_bytes: budget.reservedBytes,
    budget_bytes: budget.capacityBytes,
  };
  resetDecoderMemoryPeak();
  return report;
}
