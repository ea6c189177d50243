/**
 * Remembers which model packages failed to load in this isolate and when each may be tried again:
 * exponential backoff per package id, shared by every request of the isolate. Inside a package's window
 * nobody re-reads it; a request that needs it gets the remembered error at once, with the seconds left.
 */
import { ModelUnavailableError } from "./store";

export interface RetryBackoff {
  /** Records a failure of `id`; returns the ms until it may be tried again. */
  fail(id: string, error: ModelUnavailableError): number;
  /** The remembered error, with its Retry-After, while `id` is inside its window; else undefined. */
  blocked(id: string): ModelUnavailableError | undefined;
  /** Forgets `id`'s failures after it loaded. */
  succeed(id: string): void;
  /** How many times `id` has failed in a row. */
  failures(id: string): number;
}

interface Failure {
  count: number;
  until: number;
  error: ModelUnavailableError;
}

export function createRetryBackoff(options: { baseMs: number; maxMs: number; now: () => number }): RetryBackoff {
  const failed = new Map<string, Failure>();
  return {
    fail(id, error) {
      const count = (failed.get(id)?.count ?? 0) + 1;
      const delay = Math.min(options.maxMs, options.baseMs * 2 ** (count - 1));
      failed.set(id, { count, until: options.now() + delay, error });
      return delay;
    },
    blocked(id) {
      const failure = failed.get(id);
      if (!failure) return undefined;
      const left = failure.until - options.now();
      if (left <= 0) return undefined;
      const { code, message, detail } = failure.error;
      return new ModelUnavailableError(code, message, { detail, cause: failure.error, retryAfterSeconds: Math.ceil(left / 1000) });
    },
    succeed(id) {
      failed.delete(id);
    },
    failures(id) {
      return failed.get(id)?.count ?? 0;
    },
  };
}
