/**
 * What one classify request holds, in the isolate's ledger, as it comes to hold it: first the chunk in flight
 * and its answer's scores, then each growth of a buffer that gathers its body (never the length a client
 * declares, so a trickling client holds only what it sent), then its decode's working memory, computed from
 * the header before decoding.
 */
import { OverloadedError, type MemoryBudget, type Reservation } from "../memory/budget";
import type { StreamHooks } from "./image-stream";

export interface RequestMemory extends StreamHooks {
  release(): void;
}

/** Reserves `baseBytes` (waiting in the ledger's queue if need be), then follows the request. */
export async function reserveRequestMemory(budget: MemoryBudget, label: string, baseBytes: number): Promise<RequestMemory> {
  const held = await budget.reserve(baseBytes, { label });
  let work: Reservation | undefined;
  return {
    commit(bytes) {
      if (!held.resize(baseBytes + bytes)) {
        throw new OverloadedError(`no memory is free for ${bytes} bytes of this request's body now`, budget.retryAfterSeconds);
      }
    },
    // Waits (bounded, FIFO) while holding the body: requests ahead in the queue are decoding, not reading, so
    // they finish and free their share.
    async reserveWorking(bytes) {
      if (work) work.release();
      work = await budget.reserve(bytes, { label: `${label} decode` });
    },
    release() {
      work?.release();
      held.release();
    },
  };
}
