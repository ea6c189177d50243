/**
 * The isolate's memory ledger. Workers allow 128 MB per isolate for the JS heap and every wasm memory together,
 * and one isolate serves several requests at once; local workerd does not enforce the limit. So every holder of
 * large memory reserves it here first: the served model(s) for as long as they are resident, each request for
 * what its body, decode and tensors will hold, computed before the work from what is already known.
 *
 * A reservation that does not fit waits in a short FIFO queue (bounded in length and time) for others to be
 * released; past those bounds it fails with OverloadedError, which the HTTP layer answers with 503 `overloaded`
 * and Retry-After. The sum of live reservations never exceeds `capacityBytes`.
 */

export class OverloadedError extends Error {
  override name = "OverloadedError";
  constructor(
    message: string,
    /** Seconds a client should wait before trying again. */
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

export interface Reservation {
  /** Bytes held now. */
  readonly bytes: number;
  readonly label: string;
  /** Gives the bytes back; a second call does nothing. */
  release(): void;
  /**
   * Changes the reserved amount in place, for a holder that reserved an estimate and now knows the real
   * figure (a model after its load). Shrinking always succeeds and lets queued requests in; growing
   * succeeds only if the extra bytes fit now. Returns whether the reservation now holds `bytes`.
   */
  resize(bytes: number): boolean;
  /**
   * Gives back all but `bytes` (never grows it). For work reserved at its worst case before it could be
   * measured: taking all it may need at once, then shrinking, never holds memory while waiting for more,
   * so requests cannot deadlock each other in the queue.
   */
  shrink(bytes: number): void;
}

export interface ReserveOptions {
  /** What the bytes are for, in logs and in `snapshot()`. */
  label?: string;
  /** Longest wait for room, in ms; 0 fails at once when the bytes do not fit now. */
  maxWaitMs?: number;
}

export interface MemoryBudget {
  readonly capacityBytes: number;
  /** What an OverloadedError from this ledger tells a client to wait, for a holder that finds no room itself. */
  readonly retryAfterSeconds: number;
  /** Bytes reserved right now. */
  readonly reservedBytes: number;
  /** Requests waiting for room right now. */
  readonly waiting: number;
  /** Reserve `bytes` now, or wait (FIFO) up to `maxWaitMs`; rejects with OverloadedError past the bounds. */
  reserve(bytes: number, options?: ReserveOptions): Promise<Reservation>;
  /** Reserve `bytes` only if they fit now and no one is queued ahead. */
  tryReserve(bytes: number, label?: string): Reservation | undefined;
  /** The live reservations by label, largest first (for logs and the memory benchmark). */
  snapshot(): { label: string; bytes: number }[];
}

export interface BudgetOptions {
  capacityBytes: number;
  /** Most requests waiting at once; one more is refused at once. */
  maxQueue: number;
  /** Default longest wait for room, in ms. */
  maxWaitMs: number;
  retryAfterSeconds: number;
}

interface Waiter {
  bytes: number;
  label: string;
  /** Set by drain() when the bytes are granted; the waiter's own timer hands it over. */
  granted?: Reservation;
}

/**
 * How often a queued request looks whether it has been granted. It must learn it from a timer of its own:
 * resolving its promise from the request that released the memory ran its continuation in that other
 * request's context, where reading its own body failed with "Cannot perform I/O on behalf of a different
 * request" (workerd 1.20261102, 24 concurrent requests in test/http/classify.test.ts).
 */
const POLL_MS = 5;

export function createMemoryBudget(options: BudgetOptions): MemoryBudget {
  const { capacityBytes, maxQueue, retryAfterSeconds } = options;
  const live = new Set<Reservation>();
  const queue: Waiter[] = [];
  let reserved = 0;

  function grant(bytes: number, label: string): Reservation {
    reserved += bytes;
    let held = bytes;
    let released = false;
    const reservation: Reservation = {
      get bytes() {
        return held;
      },
      label,
      release() {
        if (released) return;
        released = true;
        reserved -= held;
        live.delete(reservation);
        drain();
      },
      resize(next) {
        if (released || !(next >= 0)) return false;
        if (next > held && reserved + (next - held) > capacityBytes) return false;
        reserved += next - held;
        held = next;
        drain();
        return true;
      },
      shrink(to) {
        if (released || !(to >= 0) || to >= held) return;
        reserved -= held - to;
        held = to;
        drain();
      },
    };
    live.add(reservation);
    return reservation;
  }

  /** Grants queued requests in order while the head fits: FIFO, so a large request is not starved by small ones. */
  function drain(): void {
    while (queue.length > 0 && reserved + queue[0]!.bytes <= capacityBytes) {
      const w = queue.shift()!;
      w.granted = grant(w.bytes, w.label);
    }
  }

  const overloaded = (why: string) => new OverloadedError(why, retryAfterSeconds);

  return {
    capacityBytes,
    retryAfterSeconds,
    get reservedBytes() {
      return reserved;
    },
    get waiting() {
      return queue.length;
    },
    tryReserve(bytes, label = "unlabelled") {
      if (!(bytes >= 0)) throw new RangeError(`cannot reserve ${bytes} bytes`);
      if (queue.length > 0 || reserved + bytes > capacityBytes) return undefined;
      return grant(bytes, label);
    },
    reserve(bytes, opts = {}) {
      const label = opts.label ?? "unlabelled";
      const maxWaitMs = opts.maxWaitMs ?? options.maxWaitMs;
      if (!(bytes >= 0)) return Promise.reject(new RangeError(`cannot reserve ${bytes} bytes`));
      if (bytes > capacityBytes) {
        return Promise.reject(
          overloaded(`the work needs ${mib(bytes)} MiB, more than this isolate's whole budget of ${mib(capacityBytes)} MiB`),
        );
      }
      const now = this.tryReserve(bytes, label);
      if (now) return Promise.resolve(now);
      if (maxWaitMs <= 0 || queue.length >= maxQueue) {
        return Promise.reject(overloaded("the server is busy with other requests"));
      }
      return new Promise<Reservation>((resolve, reject) => {
        const waiter: Waiter = { bytes, label };
        const deadline = Date.now() + maxWaitMs;
        const poll = () => {
          if (waiter.granted) return resolve(waiter.granted);
          if (Date.now() < deadline) return void setTimeout(poll, POLL_MS);
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          reject(overloaded("the server stayed busy with other requests"));
          drain(); // a large head that timed out may have been blocking smaller ones behind it
        };
        queue.push(waiter);
        setTimeout(poll, POLL_MS);
      });
    },
    snapshot() {
      return [...live].map((r) => ({ label: r.label, bytes: r.bytes })).sort((a, b) => b.bytes - a.bytes);
    },
  };
}

const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
