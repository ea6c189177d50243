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
 * Largest JPEG accepted, in pixels, read from its header before decoding. Baseline JPEGs decode at a
 * reduced DCT scale (a 12 MP photo costs ~4 MiB), but a progressive JPEG keeps all DCT coefficients
 * (~38 MiB at 12 MP, shared/platform-notes.md), so the cap stays near a phone camera's resolution.
 */
export const MAX_JPEG_PIXELS = 16_000_000;

/** Largest PNG accepted, in pixels. PNGs cannot be downscaled while decoding: 4 MP is 16 MiB of RGBA. */
export const MAX_PNG_PIXELS = 4_200_000;

/** `top_k` when the request names none. */
export const DEFAULT_TOP_K = 5;

/** How long a loaded model trusts the R2 pointer before it checks for a switched one. */
export const POINTER_CHECK_INTERVAL_MS = 30_000;

/** Seconds a client is told to wait (Retry-After) when the model cannot be served. */
export const RETRY_AFTER_SECONDS = 5;

/** R2 keys (docs/model-package.md, "R2 layout"). */
export const POINTER_KEY = "models/current.json";
export const packageKey = (id: string, file: string): string => `models/${id}/${file}`;
