/** POST /v1/classify: image(s) in, top-k labels and whether each image looks like the training data out. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import {
  BODY_SLACK_BYTES,
  DEFAULT_TOP_K,
  MAX_BATCH_IMAGES,
  MAX_IMAGE_BYTES,
  MAX_MULTIPART_BODY_BYTES,
  MAX_STREAMED_IMAGE_BYTES,
  READ_AHEAD_BYTES,
} from "../../config";
import { ImageError, type PreparedImage } from "../../image";
import { imageStreamToTensor } from "../../pipeline/image-stream";
import { type RequestMemory, reserveRequestMemory } from "../../pipeline/request-memory";
import { keyedRoute, rateLimitedResponse, unauthorizedResponse } from "../access-docs";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { type BodyOptions, bodyChunks, bodyTimeouts } from "../body/read-body";
import { multipartBoundary } from "../body/multipart";
import { multipartImages } from "../body/multipart-stream";
import { emptyImage, formOodThreshold, formTopK, inputForm, jsonImageStream, queryOptions } from "../read-images";
import { serverTiming } from "../server-timing";
import {
  batchResponseSchema,
  classifyFormSchema,
  classifyJsonSchema,
  classifyQuerySchema,
  classifyResponseSchema,
  errorSchema,
  type BatchResponse,
  type ClassifyResponse,
  type ClassifyResult,
} from "../schemas";

const errors = (description: string) => ({ description, content: { "application/json": { schema: errorSchema } } });

export const classifyRoute = createRoute({
  method: "post",
  path: "/v1/classify",
  summary: "Classify one image, or a batch sent as multipart/form-data",
  ...keyedRoute,
  request: {
    query: classifyQuerySchema,
    body: {
      required: true,
      content: {
        "image/*": { schema: z.string().openapi({ format: "binary", description: "The image file itself (JPEG, PNG or WebP)." }) },
        "multipart/form-data": { schema: classifyFormSchema },
        "application/json": { schema: classifyJsonSchema },
      },
    },
  },
  responses: {
    200: {
      description:
        "Labels sorted by score, highest first, with `unknown` and `ood_score` (null for a model without a calibration). " +
        "A multipart request gets `results`, one per image, in order, each with its own verdict.",
      headers: {
        "Server-Timing": {
          schema: { type: "string" },
          description:
            "decode, preprocess and inference time in ms, each only where the runtime's clock advanced (a deployed Worker's moves only at I/O): often absent when deployed.",
        },
        "X-Request-Id": { schema: { type: "string" } },
      },
      content: { "application/json": { schema: z.union([classifyResponseSchema, batchResponseSchema]) } },
    },
    400: errors("Malformed request: bad top_k or ood_threshold, JSON, byte values or base64, no image."),
    ...unauthorizedResponse,
    413: errors("Body, batch, image size or the memory decoding it needs over its limit."),
    415: errors("Not a supported image type (JPEG, PNG, WebP; animated WebP is refused)."),
    422: errors("An image that cannot be decoded."),
    ...rateLimitedResponse,
    503: errors("The model cannot be served right now, or the server is out of memory for more requests (`overloaded`); see Retry-After."),
  },
});

export function registerClassify(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerPath(classifyRoute);
  app.post(classifyRoute.path.replace(/{(\w+)}/g, ":$1"), async (c) => {
    // What needs no body first: a wrong Content-Type, a body declared over its limit or a bad query costs nothing.
    const form = inputForm(c);
    const fromQuery = queryOptions(c);
    // The model first, so a request never holds memory while it waits for a model load, which needs room in
    // the same ledger.
    const lease = await c.var.model.acquire();
    let memory: RequestMemory | undefined;
    try {
      const { classifier } = lease;
      const { manifest } = classifier;
      // A batch keeps every image's flattened features and answer until its dense pass: small (36 KiB an image for
      // AlexNet-224), reserved for the largest batch up front.
      const perImage =
        form === "multipart" ? MAX_BATCH_IMAGES * (scoresBytes(manifest.labels.length) + classifier.featureBytesPerImage) : 0;
      const base = BODY_SLACK_BYTES + scoresBytes(manifest.labels.length) + perImage;
      memory = await reserveRequestMemory(c.var.budget, `classify ${c.get("requestId") ?? ""}`.trim(), base, {
        gaveWay: () =>
          new ApiError(
            408,
            "body_timeout",
            "The body arrived too slowly while other requests waited for this server's memory; send it again on a faster or steadier connection.",
          ),
      });
      const options: BodyOptions = {
        ...bodyTimeouts(c.env),
        commit: memory.commit,
        readAheadBytes: READ_AHEAD_BYTES,
        readAhead: memory.readAhead,
        onChunk: memory.onChunk,
        onEnd: memory.onEnd,
        signal: memory.signal,
      };
      const timing = { decode: 0, preprocess: 0, inference: 0 };
      const note = (prepared: PreparedImage) => {
        timing.decode += prepared.decodeMs;
        timing.preprocess += prepared.preprocessMs;
      };

      if (form === "raw" || form === "json") {
        // One image, decoded from the body as it arrives where its format allows (src/pipeline/image-stream.ts):
        // the raw bytes, or what a JSON body's base64 or byte array decodes to.
        const json = form === "json" ? jsonImageStream(c, fromQuery, options) : undefined;
        const body = json?.chunks ?? bodyChunks(c.req.raw, MAX_STREAMED_IMAGE_BYTES, "image", options);
        const prepared = await imageStreamToTensor(body, manifest.preprocess, manifest.input, memory, MAX_IMAGE_BYTES, emptyImage);
        const topK = Math.min(json?.topK() ?? fromQuery.topK ?? DEFAULT_TOP_K, manifest.labels.length);
        const oodThreshold = json ? json.oodThreshold() : fromQuery.oodThreshold;
        note(prepared);
        const started = performance.now();
        const judgement = classifier.judge([prepared.tensor], topK, oodThreshold)[0]!;
        timing.inference = performance.now() - started;
        c.header("Server-Timing", serverTiming(timing));
        const answer: ClassifyResponse = { model: manifest.id, ...result(judgement) };
        return c.json(answer);
      }

      // A multipart batch: each image part streams into the pipeline as it arrives, one at a time, and only its
      // flattened features (and, with a calibration, its input's part of the ood score: one number) are kept, so
      // the dense layers run once for all of them, sharing each weight load.
      const fields: { top_k?: string; ood_threshold?: string } = {};
      const parts = multipartImages(
        bodyChunks(c.req.raw, MAX_MULTIPART_BODY_BYTES, "multipart body", options),
        multipartBoundary(c.req.header("content-type") ?? ""),
        {
          maxImages: MAX_BATCH_IMAGES,
          tooMany: (count) =>
            new ApiError(413, "too_many_images", `A batch holds at most ${MAX_BATCH_IMAGES} images; this one has more (${count} so far).`),
          onField: (name, value) => {
            fields[name] = value;
          },
        },
      );
      const batch = classifier.batch();
      let count = 0;
      for await (const part of parts) {
        let prepared: PreparedImage;
        try {
          prepared = await imageStreamToTensor(part.bytes, manifest.preprocess, manifest.input, memory, MAX_IMAGE_BYTES, emptyImage);
        } catch (error) {
          throw inBatch(error, part.index);
        }
        note(prepared);
        const started = performance.now();
        batch.add(prepared.tensor);
        timing.inference += performance.now() - started;
        count++;
      }
      if (count === 0) throw new ApiError(400, "missing_image", 'The form has no "image" file field.');
      const topK = Math.min(formTopK(fields.top_k) ?? fromQuery.topK ?? DEFAULT_TOP_K, manifest.labels.length);
      const oodThreshold = formOodThreshold(fields.ood_threshold) ?? fromQuery.oodThreshold;
      const started = performance.now();
      const judgements = batch.judge(topK, oodThreshold);
      timing.inference += performance.now() - started;
      c.header("Server-Timing", serverTiming(timing));
      const body: BatchResponse = { model: manifest.id, results: judgements.map(result) };
      return c.json(body);
    } finally {
      // The memory goes back before the answer: what is left of a refused body is read away after this
      // (src/http/middleware/unread-body.ts), which may take a while.
      memory?.release();
      lease.release();
    }
  });
}

/** An image's error in a batch names the image (its place; the batch's size is not known until it has been read). */
function inBatch(error: unknown, index: number): unknown {
  if (error instanceof ImageError || (error instanceof ApiError && error.code === "empty_image")) {
    return new ApiError(error.status, error.code, `Image ${index + 1} of the batch: ${error.message}`, { cause: error });
  }
  return error;
}

/** One image's answer as the API writes it: the engine's judgement (Classifier.judge), its fields named as the schema names them. */
const result = (j: Omit<ClassifyResult, "ood_score"> & { oodScore: number | null }): ClassifyResult => ({
  predictions: j.predictions,
  unknown: j.unknown,
  ood_score: j.oodScore,
});

/**
 * The forward pass's logits, their calibrated probabilities (float64) and the sorted copy in JS, plus the
 * verdict's numbers; its activations live in the model's own heaps.
 */
const scoresBytes = (labels: number): number => labels * (4 + 8) + labels * 64 + 16;
