/**
 * Every limit and default of the Worker, in one place. Numbers that bound memory are sized against the
 * 128 MB isolate limit (https://developers.cloudflare.com/workers/platform/limits/#memory), which the
 * model's int8 dense weights (~56 MiB for the full AlexNet) already take half of.
 */

/** Largest request body accepted, in bytes. Cloudflare's Free/Pro zones stop at 100 MB anyway. */
export const MAX_BODY_BYTES = 20 * 1024 * 1024;

/** Images per request in a multipart batch. Each costs one forward pass (~0.1 s of CPU). */
export const MAX_BATCH_IMAGES = 8;

/**
 * Largest baseline JPEG accepted, in pixels, read from its header before decoding. It decodes at a
 * reduced DCT scale: a 12 MP photo peaks at ~2 MiB of decoder memory (measured, test/image).
 */
export const MAX_JPEG_PIXELS = 16_000_000;

/**
 * JPEGs are decoded at the smallest DCT scale (n/8) whose shorter side is at least this many times the
 * model's resize size; the resize then does the rest, as training's full decode + resize does. At 1x the
 * scores drifted from training's full PIL decode by 0.0014-0.0022 (mean total variation, 300 Fashion-MNIST
 * images at 112-896 px); at 2x by 0.0004-0.0007, the level of the 1792 px case, where both decode at 1/8
 * (`node bench/jpeg-skew.mjs`, README "JPEG decoding and training"). Top-1 was the same either way. It costs
 * a larger intermediate raster: 1000x750 instead of 500x375 for a 12 MP photo and a 256 px resize.
 */
export const JPEG_DECODE_OVERSAMPLING = 2;

/**
 * Largest progressive JPEG accepted. libjpeg keeps all its DCT coefficients while decoding, at any
 * scale: 36.8 MiB of decoder memory at 12 MP (measured), which next to the ~92 MiB the full AlexNet
 * holds would break the 128 MB isolate limit. 4 MP costs ~12 MiB.
 */
export const MAX_PROGRESSIVE_JPEG_PIXELS = 4_000_000;

/**
 * Largest PNG accepted, in pixels. PNGs cannot be downscaled while decoding, and the inflated rows
 * plus the RGB raster cost ~7 bytes a pixel in JS memory: 1920x1080 (2.07 MP) fits, ~15 MiB.
 */
export const MAX_PNG_PIXELS = 2_100_000;

/** `top_k` when the request names none. */
export const DEFAULT_TOP_K = 5;

/** How long a loaded model trusts the R2 pointer before it checks for a switched one. */
export const POINTER_CHECK_INTERVAL_MS = 30_000;

/** Seconds a client is told to wait (Retry-After) when the model cannot be served. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * Longest wait for one R2 call or one 1 MiB read of a body before the load counts it as a fault. R2 answers
 * in tens of ms and a 1 MiB read even at 10 MB/s takes 0.1 s; 10 s means a stalled connection, and a
 * request waiting on the load should get a 503 rather than hang until the platform cancels it.
 */
export const R2_READ_TIMEOUT_MS = 10_000;

/**
 * Retry backoff after a model package fails to load, per isolate and per package id: the first retry after
 * 2 s (a transient R2 fault clears fast), doubling to at most 10 min. A full AlexNet load re-reads ~60 MB,
 * so a broken package must not be retried by every request, nor by every isolate every pointer check.
 */
export const MODEL_RETRY_BASE_MS = 2_000;
export const MODEL_RETRY_MAX_MS = 600_000;

/**
 * Longest a request waits while the isolate switches models through "free the old one, then load the new"
 * (when both do not fit the memory budget). A full AlexNet streams from R2 and loads in 1-3 s; past
 * 15 s the request gets 503 `model_unavailable` with Retry-After instead of hanging.
 */
export const SWITCH_WAIT_MS = 15_000;

/** R2 keys (docs/model-package.md, "R2 layout"). */
export const POINTER_KEY = "models/current.json";
export const packageKey = (id: string, file: string): string => `models/${id}/${file}`;

/**
 * The isolate's memory budget (src/memory/budget.ts). Cloudflare allows 128 MB per isolate, JS heap and wasm
 * memories together (https://developers.cloudflare.com/workers/platform/limits/#memory); the ledger hands out
 * what is left after the runtime's own share: the JS heap of the loaded code (tfjs, Hono, zod) and workerd's
 * per-isolate overhead. RUNTIME_MARGIN_BYTES is that share, to be set from the inspector measurement
 * (`npm run bench:memory`).
 */
export const ISOLATE_MEMORY_BYTES = 128 * 1000 * 1000;
export const RUNTIME_MARGIN_BYTES = 16 * 1024 * 1024;
export const MEMORY_BUDGET_BYTES = ISOLATE_MEMORY_BYTES - RUNTIME_MARGIN_BYTES;
/** Requests that may wait for memory at once; the next is answered 503 `overloaded` at once. */
export const MEMORY_QUEUE_MAX = 16;
/** Longest a request waits for memory before 503 `overloaded`: a few forward passes' worth. */
export const MEMORY_WAIT_MS = 2_000;

/**
 * Rate limits (src/http/middleware/rate-limit.ts). The limit itself lives on the RATE_LIMITER binding in
 * wrangler.toml (`[ratelimits.simple]`), which the Worker cannot read back; this must equal its `period`,
 * the longest a refused client may have to wait for its window to roll over (Retry-After).
 */
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/**
 * How long browsers may cache a CORS preflight answer. Chromium caps it at 2 h, Firefox at 24 h; 10 min
 * saves a preflight per classify while a changed CORS_ORIGINS still reaches browsers soon.
 */
export const CORS_MAX_AGE_SECONDS = 600;
