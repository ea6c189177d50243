/**
 * Every limit and default of the Worker, in one place. Numbers that bound memory are sized against the
 * 128 MB isolate limit (https://developers.cloudflare.com/workers/platform/limits/#memory), which the
 * model's int8 dense weights (~56 MiB for the full AlexNet) already take half of.
 */

/** Images per request in a multipart batch. Each costs one forward pass (~0.1 s of CPU). */
export const MAX_BATCH_IMAGES = 8;

/**
 * Largest baseline JPEG accepted, in pixels, read from its header before decoding. A raw body streams through
 * libjpeg-turbo at a reduced DCT scale (src/image/jpeg-rows.ts): no file copy and no raster, ~0.2 MiB of
 * decoder memory at 12 MP (docs/jpeg-decoder.md), so memory does not decide this limit; work does. 50 MP
 * covers 48-50 MP camera modes; at 1/8 scale such a file decodes in well under a second on this VM. A JPEG
 * that arrives in a multipart or JSON body is decoded whole, within MAX_IMAGE_WORKING_BYTES (its computed cost
 * refuses what does not fit, as it refuses elongated ones that scaling cannot shrink, 65000x240).
 */
export const MAX_JPEG_PIXELS = 50_000_000;

/**
 * JPEGs are decoded at the smallest DCT scale (n/8) whose shorter side is at least this many times the
 * model's resize size; the resize then does the rest, as training's full decode + resize does. At 1x the
 * scores drifted from training's full PIL decode by 0.0014-0.0022 (mean total variation, 300 Fashion-MNIST
 * images at 112-896 px); at 2x by 0.0004-0.0007, the level of the 1792 px case, where both decode at 1/8
 * (`node bench/jpeg-skew.mjs`, docs/performance.md, "Decoding"). Top-1 was the same either way. It costs
 * a larger intermediate raster: 1000x750 instead of 500x375 for a 12 MP photo and a 256 px resize.
 * WebPs use the same factor: libwebp scales to exactly this shorter side (src/image/webp.ts).
 */
export const DECODE_OVERSAMPLING = 2;

/**
 * Largest progressive JPEG accepted, in pixels. Its coefficients are kept across scans, and that store, not
 * the file, decides memory. Streamed (src/image/jpeg-rows.ts), the store keeps per block only what each
 * component's scaled IDCT reads (docs/jpeg-decoder.md): a 12 MP 4:2:0 phone photo costs ~11.4 MiB in all
 * beside AlexNet-224's input (test/image/cost.test.ts), within MAX_STREAMED_WORKING_BYTES; the computed cost
 * decides within this limit, which bounds work (each scan is a pass over the image). Gathered whole
 * (multipart, JSON), libjpeg keeps every coefficient (36.8 MiB at 12 MP): the cost refuses all but small ones.
 */
export const MAX_PROGRESSIVE_JPEG_PIXELS = 24_000_000;

/**
 * Largest non-interlaced PNG accepted, in pixels. These decode row by row into the row-by-row resize, so
 * memory does not grow with the pixels (src/image/png-stream.ts: ~1.2 MiB at any size up to 16384 wide); what
 * grows is work. 50 MP covers an 8K screenshot (33 MP) and a 48 MP camera's PNG; at the streaming decoder's
 * measured ~13 ms a megapixel (docs/png-decoder.md) plus the resize's horizontal pass, ~1 s of this VM's CPU.
 */
export const MAX_PNG_PIXELS = 50_000_000;
/**
 * Largest interlaced (Adam7) PNG accepted, in pixels. Its rows arrive in seven passes over the whole image,
 * so it decodes whole: the RGB raster (3 bytes a pixel) and the resize's horizontal pass (~0.9 rows of float
 * RGB per source row of the crop) are held at once. 1.5 MP (e.g. 1632x918, 1224x1224) costs at most
 * ~8.6 MiB, within MAX_IMAGE_WORKING_BYTES. Interlaced PNGs are rare (screenshots and exports are not).
 */
export const MAX_INTERLACED_PNG_PIXELS = 1_500_000;

/**
 * Largest lossy WebP accepted (VP8, without alpha). libwebp decodes it row by row into its rescaler at the
 * size the resize needs (src/image/webp.ts): a 12 MP photo's decoder memory was ~2 MiB, its file included
 * (measured, test/image/webp-cost.test.ts), so memory does not bound it; decoding time does (~0.4 s of CPU
 * at 12 MP, measured in Node). The JPEG limit, for the same reason; WebP's own limit is 16383x16383.
 */
export const MAX_WEBP_PIXELS = 16_000_000;

/**
 * Largest lossless WebP (VP8L) accepted. libwebp decodes it to 4-byte ARGB at full size before it scales:
 * ~4.2 bytes a pixel with its tables and transforms (measured), and WebP cannot stream, so the file is held
 * too. A 1920x1080 screenshot (2.07 MP; lossless screenshots run 0.05-0.5 MB) computes to ~12 MiB with a
 * 0.3 MB file (test/image/webp-cost.test.ts; a larger file costs itself twice, held and copied): within one
 * image's share when it comes as a raw or JSON body, which holds nothing else (src/pipeline/image-stream.ts);
 * in a multipart batch, beside a held body, the computed cost refuses what does not fit (413 naming it).
 */
export const MAX_WEBP_LOSSLESS_PIXELS = 2_100_000;

/**
 * Largest lossy WebP with alpha accepted. Its alpha plane is a lossless image decoded at full size beside
 * two copies of the plane: ~6.1 bytes a pixel (measured at 1920x1080), so its limit is below lossless's:
 * 0.7 MP with a 1 MiB file computes to ~8.9 MiB with the raster, resize and tensor.
 */
export const MAX_WEBP_ALPHA_PIXELS = 700_000;

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

/**
 * What the largest model we serve holds, counted: the full AlexNet-224's wasm heaps and kernel memory at
 * their peak after a forward pass, 93.0 MiB measured by `npm run bench` (docs/memory.md).
 * The forward pass's activations live in those heaps, and passes never overlap (they are synchronous).
 */
export const FULL_MODEL_BYTES = 93 * 1024 * 1024;
/**
 * What one request may hold at its limits: its body, one image being decoded and its input tensor. Every
 * input form's limits below are sized so that one request at them fits beside the full model: a request
 * that could never fit would only ever get 503.
 */
export const REQUEST_MEMORY_BYTES = MEMORY_BUDGET_BYTES - FULL_MODEL_BYTES;
/**
 * Largest image file, in bytes: a raw body, a multipart body (all its images together) or the bytes a JSON
 * body decodes to. A JPEG is held twice while it decodes (the body, and its copy in the decoder's wasm
 * memory), so 2 x 4 MiB plus a 12 MP photo's scaled decode (~3.5 MiB) is what fits REQUEST_MEMORY_BYTES.
 */
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
/**
 * Largest raw body, for an image that streams (a non-interlaced PNG today): it is decoded as it arrives and
 * never held, so its size costs time, not memory. 25 MiB covers 48-50 MP camera files (10-20 MB) and an 8K
 * screenshot; Google Cloud Vision takes 20 MB per image, Cloudflare accepts bodies up to 100 MB.
 */
export const MAX_STREAMED_IMAGE_BYTES = 25 * 1024 * 1024;
/**
 * Room a body needs beyond its images: a multipart body's boundaries and part headers, or the chunk in
 * flight while a body streams in.
 */
export const BODY_SLACK_BYTES = 64 * 1024;
/**
 * What decoding one streamed image may hold (src/pipeline/image-stream.ts): no body is held beside it, only
 * the chunk in flight and up to 1 MiB of JPEG header segments (src/image/jpeg-rows.ts).
 */
export const MAX_STREAMED_WORKING_BYTES = REQUEST_MEMORY_BYTES - BODY_SLACK_BYTES - 1024 * 1024;
/**
 * Largest multipart body: its images stream one after another into their decoders (src/http/body/multipart-stream.ts),
 * so the body is never held and its size costs time, not memory: four 5 MB phone photos, or one image at
 * MAX_STREAMED_IMAGE_BYTES, and their part headers.
 */
export const MAX_MULTIPART_BODY_BYTES = MAX_STREAMED_IMAGE_BYTES + BODY_SLACK_BYTES;
/**
 * What decoding one gathered image may need, from its header (src/image/cost.ts): decoder memory at the chosen
 * DCT scale, rasters, resize buffers and the input tensor, beside the image's own bytes held whole (a WebP,
 * an interlaced PNG, or any image of a multipart batch planned with the others: at most MAX_IMAGE_BYTES) and
 * a chunk in flight. An image over it is refused with 413 before decoding. Images that stream hold no body
 * and get MAX_STREAMED_WORKING_BYTES; a gathered one in a raw or JSON body gets the share less its own bytes.
 */
export const MAX_IMAGE_WORKING_BYTES = REQUEST_MEMORY_BYTES - MAX_IMAGE_BYTES - 2 * BODY_SLACK_BYTES;
/**
 * A body that sends nothing for this long is answered 408 and its memory released. While a Worker waits on a
 * client's bytes it spends no CPU and no platform limit ends the request, so a stalled upload would otherwise
 * hold its connection and reservation for good. Mobile uplinks stall for seconds (handover, tunnels): 15 s
 * of silence is past those and short of what an attacker holding connections open wants.
 */
export const BODY_IDLE_TIMEOUT_MS = 15_000;
/**
 * The whole body must arrive within this long (408 after). 25 MiB at 3 Mbit/s, a slow mobile uplink, takes
 * 70 s; 120 s leaves room and still bounds how long a trickling client holds anything.
 */
export const BODY_DEADLINE_MS = 120_000;
/**
 * A request whose body is still arriving while others wait in the memory ledger's queue gives way (408, its
 * memory released) when its body has sent nothing for GIVE_WAY_STALL_MS, or has averaged under
 * GIVE_WAY_MIN_BYTES_PER_SECOND since its first byte (judged after GIVE_WAY_STALL_MS). A streamed decode holds
 * its working memory until the last byte, so without this a few slow uploads (16 declared phone photos sent a
 * byte at a time) hold the ledger for the body deadline and every other client gets 503. 128 KiB/s is 1 Mbit/s,
 * slower than a weak 3G uplink; 0.5 s of silence is far longer than the gaps between a live upload's packets
 * (a 1.4 KB packet every 11 ms at 1 Mbit/s), and each slow holder costs a waiting client at most about that
 * long. The rate is judged over the last 0.5 s, so a fast start does not buy a long trickle. A slower client is still served whenever nobody is waiting. Checked every GIVE_WAY_CHECK_MS, from the slow
 * request's own timer: a waiting request cannot act in another request's context.
 */
export const GIVE_WAY_MIN_BYTES_PER_SECOND = 128 * 1024;
export const GIVE_WAY_STALL_MS = 500;
export const GIVE_WAY_CHECK_MS = 100;
/**
 * A body's first bytes are gathered up to this many before anything is decoded (BodyOptions.readAheadBytes),
 * each byte charged to the ledger as it arrives, so no decode's memory (3-14 MiB) is reserved for a client
 * until it has sent this much or all of a smaller image: a trickling client holds what it sent, and only a
 * client that sends fast reaches the ledger's queue. 512 KiB holds a whole web JPEG or screenshot PNG; at
 * 32 Mbit/s it arrives in 0.13 s, and the decoder catches up on it in a few ms.
 */
export const READ_AHEAD_BYTES = 512 * 1024;
/**
 * Largest JSON body. JSON is parsed as it streams in and its image decoded into the image's decoder as it
 * goes (src/http/read-images.ts, jsonImageStream), so its size costs parse time, not memory: base64 of an image
 * at MAX_STREAMED_IMAGE_BYTES (4/3 of it), and room for the members around it. A Workers-AI byte array
 * (`[n, n, ...]`, up to 4 characters a byte) of a phone photo fits too (5 MB -> ~18 MB of text).
 */
export const MAX_JSON_BODY_BYTES = Math.ceil((4 * MAX_STREAMED_IMAGE_BYTES) / 3) + 64 * 1024;
/**
 * A body the Worker refused without reading all of it (over its limit, or answered 401/415/429 first) is read
 * away and dropped, chunk by chunk, when it declared at most this many bytes; one declared larger, or without a
 * length, is cancelled. HTTP/1.1 clients write their whole body before they read the answer, so a cancelled
 * upload reaches them as a reset connection instead of the JSON error that says why. Reading away holds one
 * chunk at a time, but the chunks are garbage until V8 collects them: bench:memory saw 20-27 MB of a refused
 * 95 MB upload in the isolate at once. So only what an accepted form may send is read away (the largest body
 * limit): a client near a limit learns about it, and larger bodies cost nothing.
 */
export const MAX_DISCARDED_BODY_BYTES = MAX_JSON_BODY_BYTES;

/**
 * Largest report.json (the package's report card, GET /v1/models) read from R2. The exporter's report of a
 * 10-label model is ~20 KiB; its confusion matrix and thumbnail index grow with the square of the labels, and
 * the exporter leaves both out above 100 labels (training/report.py), so a larger file is not one it wrote.
 */
export const MAX_REPORT_BYTES = 256 * 1024;

/**
 * What a report costs the memory ledger per byte of its file while a request holds it: the bytes, their text,
 * the parsed objects (a JSON number in an array costs 8-16 bytes for 2-6 of text) and the answer's text again.
 */
export const REPORT_MEMORY_FACTOR = 8;
