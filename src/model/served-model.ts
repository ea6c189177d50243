/**
 * The model this isolate serves: loaded once from the R2 pointer, shared by concurrent requests, held in
 * the isolate's memory budget for as long as it is resident, and switched when the pointer names another
 * package without failing a request. Knows nothing of HTTP: callers pass the bucket and, where the runtime
 * has one, a `waitUntil` that carries background work past the response.
 *
 * - Concurrent first requests share one load. Before a load the model reserves an estimate from its manifest
 *   (engine/load-memory.ts); after it, the reservation shrinks to the classifier's resident bytes. Disposing
 *   the model releases it.
 * - At most every `checkIntervalMs` the small pointer object is re-read: in `waitUntil` when the caller gives
 *   one (the request is served by the current model meanwhile), else before the request is served.
 * - A switch when old and new both fit the budget: the new one loads beside the old, which keeps answering;
 *   only a complete, verified model replaces it, and the old one is disposed after its last request.
 * - A switch when they do not (two full AlexNets exceed 128 MB): new requests wait (at most `switchWaitMs`),
 *   requests in flight finish on the old model, it is freed, the new one streams in and answers the waiting
 *   requests. If the new one fails, the old one is loaded again and serves.
 * - A package that fails to load is never served, and is not read again until its backoff window (per id,
 *   shared by every request of the isolate) has passed; requests that need it meanwhile get its error at once.
 */
import {
  MEMORY_BUDGET_BYTES,
  MEMORY_QUEUE_MAX,
  MEMORY_WAIT_MS,
  MODEL_RETRY_BASE_MS,
  MODEL_RETRY_MAX_MS,
  POINTER_KEY,
  RETRY_AFTER_SECONDS,
  SWITCH_WAIT_MS,
} from "../config";
import { loadClassifier, type Classifier } from "../engine/classifier";
import { estimateLoadBytes } from "../engine/load-memory";
import { createMemoryBudget, OverloadedError, type MemoryBudget, type Reservation } from "../memory/budget";
import type { Manifest } from "../package/manifest";
import { createRetryBackoff } from "./retry-backoff";
import { ModelUnavailableError, openWeights, readManifest, readPointer, type StoreOptions } from "./store";
import { describeError } from "../describe-error";

export interface ModelLease {
  readonly classifier: Classifier;
  /** The model's resident bytes, as reserved in the memory budget. */
  readonly residentBytes: number;
  release(): void;
}

export interface AcquireOptions {
  /** Carries the pointer check past the response (ExecutionContext.waitUntil), so no request waits on R2 for it. */
  waitUntil?: (work: Promise<unknown>) => void;
}

export interface ModelHolder {
  /**
   * The served model, loading it first if needed; re-reads the pointer when the last check is older than
   * `checkIntervalMs`. Throws ModelUnavailableError when no model can be served.
   */
  acquire(bucket: R2Bucket, checkIntervalMs: number, options?: AcquireOptions): Promise<ModelLease>;
  /** The loaded model, if any, without loading or checking anything. */
  loaded(): Classifier | undefined;
  /** The served model's id and resident bytes, for logs and benchmarks. */
  served(): { id: string; residentBytes: number } | undefined;
  /** How many loads have started in this isolate (initial, switches, reloads). */
  readonly loadCount: number;
}

export interface ModelHolderOptions {
  /** The isolate's memory ledger; models reserve their bytes in it. */
  budget?: MemoryBudget;
  now?: () => number;
  /** Longest a request waits while a switch frees the old model and loads the new one. */
  switchWaitMs?: number;
  /** Backoff after a failed load, per package id. */
  retry?: { baseMs: number; maxMs: number };
  /** Longest wait for one R2 call or body read (store.ts). */
  r2TimeoutMs?: number;
}

interface Served {
  id: string;
  manifest: Manifest;
  classifier: Classifier;
  reservation: Reservation;
  leases: number;
  retired: boolean;
  freed: boolean;
  /** Called when the last lease is released (a switch waits for it). */
  idle?: () => void;
}

/** The backoff key for faults reading the pointer itself (not a valid package id: it holds a '/'). */
const POINTER = POINTER_KEY;

/** One JSON object per event, so that logs can be searched by field. */
const logError = (event: Record<string, unknown>) => console.error(event);
const logInfo = (event: Record<string, unknown>) => console.log(event);

export function createModelHolder(options: ModelHolderOptions = {}): ModelHolder {
  const now = options.now ?? (() => Date.now());
  const budget =
    options.budget ??
    createMemoryBudget({
      capacityBytes: MEMORY_BUDGET_BYTES,
      maxQueue: MEMORY_QUEUE_MAX,
      maxWaitMs: MEMORY_WAIT_MS,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    });
  const switchWaitMs = options.switchWaitMs ?? SWITCH_WAIT_MS;
  const backoff = createRetryBackoff({
    baseMs: options.retry?.baseMs ?? MODEL_RETRY_BASE_MS,
    maxMs: options.retry?.maxMs ?? MODEL_RETRY_MAX_MS,
    now,
  });
  const store: StoreOptions = { timeoutMs: options.r2TimeoutMs };

  let served: Served | undefined;
  /** The last id that loaded: served again when the pointer names a package inside its backoff window. */
  let lastGoodId: string | undefined;
  let initial: Promise<void> | undefined;
  let checking: Promise<void> | undefined;
  let lastCheckAt = -Infinity;
  /** Set while a switch frees the old model and loads the new one: acquire waits on it. */
  let gate: Promise<void> | undefined;
  let loadCount = 0;

  /** Records a failed load of `id` (backoff, one log line) and returns the error a client gets. */
  function failed(id: string, error: unknown): ModelUnavailableError {
    const cause =
      error instanceof ModelUnavailableError
        ? error
        : new ModelUnavailableError("model_unavailable", "The model could not be loaded just now.", {
            detail: describeError(error),
            cause: error,
          });
    const delay = backoff.fail(id, cause);
    logError({
      event: "model_load_failed",
      model: id,
      code: cause.code,
      detail: cause.detail,
      attempt: backoff.failures(id),
      retry_in_ms: delay,
    });
    return new ModelUnavailableError(cause.code, cause.message, {
      detail: cause.detail,
      cause,
      retryAfterSeconds: Math.ceil(delay / 1000),
    });
  }

  /** Reserves the estimate for loading `manifest`, waiting up to `waitMs` for room. Not a package failure. */
  async function reserveFor(manifest: Manifest, estimate: number, waitMs: number): Promise<Reservation> {
    try {
      return await budget.reserve(estimate, { label: `model ${manifest.id}`, maxWaitMs: waitMs });
    } catch (error) {
      if (!(error instanceof OverloadedError)) throw error;
      throw new ModelUnavailableError("model_unavailable", "The server is busy; the model could not be loaded just now.", {
        detail: `no room in the memory budget for model ${manifest.id} (${estimate} bytes) within ${waitMs} ms: ${error.message}`,
        retryAfterSeconds: error.retryAfterSeconds,
      });
    }
  }

  /** A model that cannot fit this isolate at all fails like a broken package: it is never served. */
  function checkFits(manifest: Manifest, estimate: number): void {
    if (estimate <= budget.capacityBytes) return;
    const mib = (n: number) => (n / 1048576).toFixed(1);
    throw new ModelUnavailableError(
      "model_unavailable",
      `The published model ${manifest.id} needs more memory than a Worker isolate has.`,
      {
        detail: `model ${manifest.id} needs ~${mib(estimate)} MiB to load, the budget is ${mib(budget.capacityBytes)} MiB`,
      },
    );
  }

  /** Streams the weights into a classifier; on success the reservation shrinks to the resident bytes. */
  async function load(bucket: R2Bucket, manifest: Manifest, reservation: Reservation): Promise<Served> {
    loadCount++;
    const started = now();
    const estimate = reservation.bytes;
    try {
      const weights = await openWeights(bucket, manifest, store);
      let classifier: Classifier;
      try {
        classifier = await loadClassifier(manifest, weights);
      } catch (cause) {
        if (cause instanceof ModelUnavailableError) throw cause;
        throw new ModelUnavailableError(
          "model_corrupt",
          `The published model ${manifest.id} cannot be loaded: its weights do not match its layers.`,
          {
            detail: `model package ${manifest.id}: ${describeError(cause)}`,
            cause,
          },
        );
      }
      const resident = classifier.residentBytes;
      if (!reservation.resize(resident)) {
        logError({ event: "model_memory_over_estimate", model: manifest.id, estimate_bytes: estimate, resident_bytes: resident });
      }
      backoff.succeed(manifest.id);
      logInfo({
        event: "model_loaded",
        model: manifest.id,
        estimate_bytes: estimate,
        resident_bytes: resident,
        load_peak_bytes: classifier.loadPeakBytes,
        ms: now() - started,
      });
      return { id: manifest.id, manifest, classifier, reservation, leases: 0, retired: false, freed: false };
    } catch (error) {
      reservation.release();
      throw error;
    }
  }

  /** Reads `id`'s manifest, reserves memory and loads it; failures of the package enter its backoff. */
  async function loadId(bucket: R2Bucket, id: string): Promise<Served> {
    let manifest: Manifest;
    let estimate: number;
    try {
      manifest = await readManifest(bucket, id, store);
      estimate = await estimateLoadBytes(manifest, { alongside: false }); // nothing is resident when this runs
      checkFits(manifest, estimate);
    } catch (error) {
      throw failed(id, error);
    }
    const reservation = await reserveFor(manifest, estimate, switchWaitMs);
    try {
      return await load(bucket, manifest, reservation);
    } catch (error) {
      throw failed(id, error);
    }
  }

  function free(model: Served): void {
    if (model.freed) return;
    model.freed = true;
    model.classifier.dispose();
    model.reservation.release();
  }

  function retire(model: Served): void {
    model.retired = true;
    if (model.leases === 0) free(model);
  }

  const whenIdle = (model: Served) => (model.leases === 0 ? Promise.resolve() : new Promise<void>((resolve) => (model.idle = resolve)));

  function lease(model: Served): ModelLease {
    model.leases++;
    let released = false;
    return {
      classifier: model.classifier,
      residentBytes: model.reservation.bytes,
      release() {
        if (released) return;
        released = true;
        model.leases--;
        if (model.leases > 0) return;
        model.idle?.();
        if (model.retired) free(model);
      },
    };
  }

  /** Nothing is served: read the pointer and load what it names (or the last good model, if that is failing). */
  async function loadFirst(bucket: R2Bucket): Promise<void> {
    const pointerFault = backoff.blocked(POINTER);
    if (pointerFault) throw pointerFault;
    let id: string;
    try {
      id = await readPointer(bucket, store);
    } catch (error) {
      // R2 faults back off like a failed load; "nothing published" does not, so a first publish is seen at once.
      if (error instanceof ModelUnavailableError && error.code === "model_unavailable") throw failed(POINTER, error);
      if (error instanceof ModelUnavailableError) logError({ event: "model_unavailable", code: error.code, detail: error.detail });
      throw error;
    }
    backoff.succeed(POINTER);
    lastCheckAt = now();
    if (backoff.blocked(id) && lastGoodId !== undefined && lastGoodId !== id && !backoff.blocked(lastGoodId)) id = lastGoodId;
    const blocked = backoff.blocked(id);
    if (blocked) throw blocked;
    served = await loadId(bucket, id);
    lastGoodId = id;
  }

  /** The periodic pointer check. Never throws: it may run in waitUntil, where nobody would see it. */
  async function check(bucket: R2Bucket): Promise<void> {
    lastCheckAt = now();
    let id: string;
    try {
      id = await readPointer(bucket, store);
    } catch (error) {
      const detail = error instanceof ModelUnavailableError ? error.detail : describeError(error);
      logError({ event: "pointer_check_failed", serving: served?.id, detail });
      return;
    }
    const current = served;
    if (!current || current.retired || id === current.id || backoff.blocked(id)) return;
    try {
      await switchTo(bucket, current, id);
    } catch (error) {
      logError({ event: "model_switch_failed", from: current.id, to: id, detail: describeError(error) });
    }
  }

  async function switchTo(bucket: R2Bucket, old: Served, id: string): Promise<void> {
    let manifest: Manifest;
    let besideBytes: number;
    let aloneBytes: number;
    try {
      manifest = await readManifest(bucket, id, store);
      besideBytes = await estimateLoadBytes(manifest, { alongside: true });
      aloneBytes = await estimateLoadBytes(manifest, { alongside: false });
      checkFits(manifest, aloneBytes);
    } catch (error) {
      failed(id, error);
      return;
    }
    const started = now();
    const beside = budget.tryReserve(besideBytes, `model ${id}`);
    if (beside) {
      let next: Served;
      try {
        next = await load(bucket, manifest, beside);
      } catch (error) {
        failed(id, error);
        return;
      }
      if (served !== old) return retire(next); // cannot happen while checks are serialised; never leak a model
      served = next;
      lastGoodId = id;
      retire(old);
      logInfo({ event: "model_switched", from: old.id, to: id, mode: "beside", ms: now() - started });
      return;
    }

    // Both do not fit: no new request may lease the old model; the ones in flight finish, then it goes.
    let open!: () => void;
    gate = new Promise<void>((resolve) => (open = resolve));
    try {
      await whenIdle(old);
      served = undefined;
      free(old);
      try {
        const reservation = await reserveFor(manifest, aloneBytes, switchWaitMs);
        try {
          served = await load(bucket, manifest, reservation);
        } catch (error) {
          throw failed(id, error);
        }
        lastGoodId = id;
        logInfo({ event: "model_switched", from: old.id, to: id, mode: "free-first", ms: now() - started });
      } catch {
        // The new one is not served; the old one serves again. If even that fails, the next request retries.
        served = await loadId(bucket, old.id).catch(() => undefined);
      }
    } finally {
      gate = undefined;
      open();
    }
  }

  async function waitForSwitch(pending: Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tooLong = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ModelUnavailableError("model_unavailable", "The model is being switched; try again shortly.", {
              retryAfterSeconds: RETRY_AFTER_SECONDS,
            }),
          ),
        switchWaitMs,
      );
    });
    try {
      await Promise.race([pending, tooLong]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  return {
    get loadCount() {
      return loadCount;
    },
    loaded: () => served?.classifier,
    served: () => served && { id: served.id, residentBytes: served.reservation.bytes },
    async acquire(bucket, checkIntervalMs, acquireOptions = {}) {
      let checked = false;
      // Every await leads back to the top: the state may have changed meanwhile, and a lease is taken
      // only in the same turn as the checks that allow it.
      for (;;) {
        if (gate) {
          await waitForSwitch(gate);
          continue;
        }
        if (!served) {
          initial ??= loadFirst(bucket).finally(() => {
            initial = undefined;
          });
          await initial;
          checked = true; // the pointer was just read
          continue;
        }
        if (!checked && now() - lastCheckAt >= checkIntervalMs) {
          checked = true;
          checking ??= check(bucket).finally(() => {
            checking = undefined;
          });
          if (acquireOptions.waitUntil) {
            acquireOptions.waitUntil(checking);
          } else {
            await checking;
            continue;
          }
        }
        return lease(served);
      }
    },
  };
}
