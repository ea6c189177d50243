/**
 * What one classify request holds, in the isolate's ledger, as it comes to hold it: first the chunk in flight
 * and its answer's scores, then each growth of a buffer that gathers its body (never the length a client
 * declares, so a trickling client holds only what it sent), then its decode's working memory, computed from
 * the header before decoding.
 *
 * A streamed decode holds its working memory until the body's last byte, so a slow upload holds it for as
 * long as its client likes (up to the body's deadline). While the body is still arriving and other requests
 * wait in the ledger's queue, a request that holds more than its base and whose body has stalled, or arrives
 * slower than GIVE_WAY_MIN_BYTES_PER_SECOND, gives way: its read ends with `gaveWay()`'s error (408 from the
 * route) and its memory goes to those waiting. Without contention a slow body is left alone.
 */
import { GIVE_WAY_CHECK_MS, GIVE_WAY_MIN_BYTES_PER_SECOND, GIVE_WAY_STALL_MS } from "../config";
import { OverloadedError, type MemoryBudget, type Reservation } from "../memory/budget";
import type { StreamHooks } from "./image-stream";

export interface RequestMemory extends StreamHooks {
  /** Aborted (with `gaveWay()`'s error) when this request gives way; the body's reads end with it. */
  readonly signal: AbortSignal;
  /**
   * The body's first bytes, gathered before anything decodes them (BodyOptions.readAhead): held as they
   * arrive, waiting in the ledger's queue when they do not fit (so slow holders can give way meanwhile).
   */
  readAhead(bytes: number): Promise<void>;
  /** The body's progress: each chunk's size as it arrives, and its end. */
  onChunk(bytes: number): void;
  onEnd(): void;
  release(): void;
}

export interface GiveWayOptions {
  /** The error a slow body's read ends with when the request gives way. */
  gaveWay: () => Error;
  /** Test hooks: the thresholds, where not src/config.ts's. */
  minBytesPerSecond?: number;
  stallMs?: number;
}

/** The most one tick of the give-way watch counts, however late it comes (see `clock` below). */
const TICK_CAP_MS = GIVE_WAY_CHECK_MS * 1.5;

/** Reserves `baseBytes` (waiting in the ledger's queue if need be), then follows the request. */
export async function reserveRequestMemory(
  budget: MemoryBudget,
  label: string,
  baseBytes: number,
  giveWay: GiveWayOptions,
): Promise<RequestMemory> {
  const held = await budget.reserve(baseBytes, { label });
  const minRate = giveWay.minBytesPerSecond ?? GIVE_WAY_MIN_BYTES_PER_SECOND;
  const stallMs = giveWay.stallMs ?? GIVE_WAY_STALL_MS;
  const controller = new AbortController();
  let work: Reservation | undefined;
  // The body's first bytes, read ahead.
  let ahead: Reservation | undefined;
  let bodyEnded = false;
  // The watch's own clock, in ms: each tick adds the time since the last one, but at most TICK_CAP_MS. When the
  // isolate is busy (this request's or another's decode runs without yielding), ticks come late and the client's
  // bytes wait undelivered: that time is the server's, not the client's, and must not make a good upload look
  // stalled or slow. Measured: 8 concurrent 50 MP uploads on a 2-core machine gave way (408, seen as resets)
  // when wall time was used. A deployed Worker's clock does not advance during compute anyway.
  let clock = 0;
  let lastTickAt = 0;
  let lastChunkAt = 0;
  let received = 0;
  // (time, bytes received) at each check while held, the last stallMs of them: the body's recent rate, so a
  // fast start does not buy a long trickle.
  let samples: { at: number; received: number }[] = [];
  // While this request waits in the ledger's queue itself it reads nothing: that time is not its body's fault.
  let queued = false;
  let watch: ReturnType<typeof setInterval> | undefined;

  const stopWatch = () => {
    if (watch !== undefined) clearInterval(watch);
    watch = undefined;
  };
  // The watch is a timer of this request's own, so the abort (and the read it ends) runs in this request's
  // context; the timer advances while the request waits on its client's bytes, which is all it watches.
  /** Waits in the ledger's queue for `bytes`; the wait is not held against this request's own body rate. */
  const wait = async (bytes: number, what: string): Promise<Reservation> => {
    queued = true;
    try {
      return await budget.reserve(bytes, { label: `${label} ${what}` });
    } finally {
      queued = false;
      lastChunkAt = Math.max(lastChunkAt, clock);
      samples = [];
    }
  };
  const startWatch = () => {
    if (watch !== undefined || bodyEnded) return;
    lastTickAt = Date.now();
    watch = setInterval(() => {
      if (bodyEnded || controller.signal.aborted) return stopWatch();
      const real = Date.now();
      clock += Math.min(real - lastTickAt, TICK_CAP_MS);
      lastTickAt = real;
      if (queued) return;
      // Sampled all along, judged only when someone waits: a holder slow for a while gives way at once.
      const now = clock;
      samples.push({ at: now, received });
      while (samples.length > 1 && now - samples[1]!.at >= stallMs) samples.shift();
      if (budget.waiting === 0) return;
      const oldest = samples[0]!;
      const stalled = now - lastChunkAt >= stallMs;
      const window = now - oldest.at;
      const slow = window >= stallMs && ((received - oldest.received) * 1000) / window < minRate;
      if (!stalled && !slow) return;
      stopWatch();
      // Give back the decode's share now: the read this aborts may be between chunks, not waiting.
      work?.release();
      ahead?.release();
      held.resize(baseBytes);
      controller.abort(giveWay.gaveWay());
    }, GIVE_WAY_CHECK_MS);
  };

  return {
    signal: controller.signal,
    commit(bytes) {
      if (!held.resize(baseBytes + bytes)) {
        throw new OverloadedError(`no memory is free for ${bytes} bytes of this request's body now`, budget.retryAfterSeconds);
      }
      if (bytes > 0) startWatch();
    },
    async readAhead(bytes) {
      if (ahead?.resize(bytes)) return;
      ahead?.release();
      ahead = undefined;
      if (bytes === 0) return;
      ahead = budget.tryReserve(bytes, `${label} body`) ?? (await wait(bytes, "body"));
      startWatch();
    },
    // Waits (bounded, FIFO) while holding the body: requests ahead in the queue are decoding, not reading, so
    // they finish and free their share.
    async reserveWorking(bytes) {
      if (work) work.release();
      work = undefined;
      work = await wait(bytes, "decode");
      startWatch();
    },
    onChunk(bytes) {
      lastChunkAt = clock;
      received += bytes;
    },
    onEnd() {
      bodyEnded = true;
      stopWatch();
    },
    release() {
      stopWatch();
      work?.release();
      ahead?.release();
      held.release();
    },
  };
}
