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

/** R2 keys (docs/model-package.md, "R2 layout"). */
export const POINTER_KEY = "models/current.json";
export const packageKey = (id: string, file: string): string => `models/${id}/${file}`;

/**
 * The isolate's memory budget (src/memory/budget.ts). Cloudflare allows 128 MB per isolate, JS heap and wasm
 * memories together (https://developers.cloudflare.com/workers/platform/limits/#memory); the ledger hands out
 * what is left after the runtime's own share: the JS heap of the loaded code (tfjs, Hono, zod) and what requests
 * hold outside their reservations. RUNTIME_MARGIN_BYTES is that share, measured through the isolate's V8
 * inspector by `npm run bench:memory` (docs/memory.md): 7.5 MB with the code loaded and no model, after a GC
 * (6.7 MB JS heap + 0.8 MB ArrayBuffers); with the model loaded and 8 raw-image requests in flight the JS heap
 * peaked at 8.3-14.2 MB (request objects and garbage between collections, which no reservation counts), so
 * 15 MB with the baseline's buffers. 16 MiB (16.8 MB) covers that.
 */
export const ISOLATE_MEMORY_BYTES = 128 * 1000 * 1000;
export const RUNTIME_MARGIN_BYTES = 16 * 1024 * 1024;
export const MEMORY_BUDGET_BYTES = ISOLATE_MEMORY_BYTES - RUNTIME_MARGIN_BYTES;
/** Requests that may wait for memory at once; the next is answered 503 `overloaded` at once. */
export const MEMORY_QUEUE_MAX = 16;
/** Longest a request waits for memory before 503 `overloaded`: a few forward passes' worth. */
export const MEMORY_WAIT_MS = 2_000;
