/**
 * The model this isolate serves: loaded once from the R2 pointer, shared by concurrent requests, retried
 * after a failure, and swapped when the pointer names another package.
 *
 * - Concurrent first requests share one load (one promise); a failed load is forgotten, so the next
 *   request tries again.
 * - At most every `checkIntervalMs` a request re-reads the small pointer object. When it names a new
 *   package, that package is loaded and verified while the old one keeps answering; only a complete,
 *   verified model replaces it. If the new one fails, the old one stays.
 * - A model is disposed only after the last request that leased it has finished with it.
 * - During a switch both models are resident. Two full 224x224 AlexNets exceed the 128 MB isolate limit:
 *   the platform then restarts the isolate, and the fresh isolate loads the new package directly.
 */
import { loadClassifier, type Classifier } from "../engine/classifier";
import { ModelUnavailableError, openWeights, readManifest, readPointer } from "./store";

export interface ModelLease {
  readonly classifier: Classifier;
  release(): void;
}

export interface ModelHolder {
  /**
   * The served model, loading it first if needed; re-reads the pointer when the last check is older
   * than `checkIntervalMs`. Throws ModelUnavailableError when no model can be served.
   */
  acquire(bucket: R2Bucket, checkIntervalMs: number): Promise<ModelLease>;
  /** The loaded model, if any, without loading or checking anything. */
  loaded(): Classifier | undefined;
  /** How many loads have started in this isolate (initial and switches). */
  readonly loadCount: number;
}

interface Served {
  id: string;
  classifier: Classifier;
  checkedAt: number;
  leases: number;
  retired: boolean;
}

export function createModelHolder(options: { now?: () => number } = {}): ModelHolder {
  const now = options.now ?? (() => Date.now());
  let served: Served | undefined;
  let loading: Promise<Served> | undefined;
  let checking: Promise<void> | undefined;
  let loadCount = 0;

  async function load(bucket: R2Bucket, id?: string): Promise<Served> {
    loadCount++;
    const packageId = id ?? (await readPointer(bucket));
    const manifest = await readManifest(bucket, packageId);
    const weights = await openWeights(bucket, manifest);
    try {
      const classifier = await loadClassifier(manifest, weights);
      return { id: packageId, classifier, checkedAt: now(), leases: 0, retired: false };
    } catch (cause) {
      if (cause instanceof ModelUnavailableError) throw cause;
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new ModelUnavailableError("model_corrupt", `model package ${packageId} cannot be loaded: ${detail}`, { cause });
    }
  }

  function startLoad(bucket: R2Bucket, id?: string): Promise<Served> {
    loading ??= load(bucket, id).finally(() => {
      loading = undefined;
    });
    return loading;
  }

  async function checkPointer(bucket: R2Bucket, current: Served): Promise<void> {
    let id: string;
    try {
      id = await readPointer(bucket);
    } catch (error) {
      console.warn(`pointer check failed, still serving ${current.id}:`, error);
      current.checkedAt = now();
      return;
    }
    current.checkedAt = now();
    if (id === current.id) return;
    try {
      const next = await startLoad(bucket, id);
      if (served === current) {
        served = next;
        retire(current);
      }
    } catch (error) {
      console.error(`switch to model ${id} failed, still serving ${current.id}:`, error);
    }
  }

  function retire(old: Served): void {
    old.retired = true;
    if (old.leases === 0) old.classifier.dispose();
  }

  return {
    get loadCount() {
      return loadCount;
    },
    loaded: () => served?.classifier,
    async acquire(bucket, checkIntervalMs) {
      if (!served) {
        const first = await startLoad(bucket);
        served ??= first;
      } else if (now() - served.checkedAt >= checkIntervalMs) {
        const current = served;
        checking ??= checkPointer(bucket, current).finally(() => {
          checking = undefined;
        });
        await checking;
      }
      const lease = served;
      lease.leases++;
      let released = false;
      return {
        classifier: lease.classifier,
        release() {
          if (released) return;
          released = true;
          lease.leases--;
          if (lease.retired && lease.leases === 0) lease.classifier.dispose();
        },
      };
    },
  };
}
