/** POST /v1/classify: image(s) in, top-k labels out. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { ImageError, prepareImage } from "../../image";
import { keyedRoute, rateLimitedResponse, unauthorizedResponse } from "../access-docs";
import type { AppEnv } from "../app";
import { ApiError } from "../errors";
import { readClassifyRequest } from "../read-images";
import { serverTiming } from "../server-timing";
import { batchResponseSchema, classifyJsonSchema, classifyQuerySchema, classifyResponseSchema, errorSchema, type BatchResponse, type ClassifyResponse } from "../schemas";

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
        "image/*": { schema: z.string().openapi({ format: "binary", description: "The image file itself (JPEG or PNG)." }) },
        "multipart/form-data": {
          schema: z.object({
            image: z.array(z.string().openapi({ format: "binary" })).openapi({ description: "One or more image files: a batch." }),
            top_k: z.string().optional(),
          }),
        },
        "application/json": { schema: classifyJsonSchema },
      },
    },
  },
  responses: {
    200: {
      description: "Labels sorted by score, highest first. A multipart request gets `results`, one per image, in order.",
      headers: {
        "Server-Timing": {
          schema: { type: "string" },
          description: "decode, preprocess and inference time in ms, each only where the runtime's clock advanced (a deployed Worker's moves only at I/O): often absent when deployed.",
        },
        "X-Request-Id": { schema: { type: "string" } },
      },
      content: { "application/json": { schema: z.union([classifyResponseSchema, batchResponseSchema]) } },
    },
    400: errors("Malformed request: bad top_k, JSON or base64, no image."),
    ...unauthorizedResponse,
    413: errors("Body, batch or image pixel count over its limit."),
    415: errors("Not a supported image type (JPEG, PNG)."),
    422: errors("An image that cannot be decoded."),
    ...rateLimitedResponse,
    503: errors("The model cannot be served right now; see Retry-After."),
  },
});

export function registerClassify(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerPath(classifyRoute);
  app.post(classifyRoute.path.replace(/{(\w+)}/g, ":$1"), async (c) => {
    const input = await readClassifyRequest(c);
    const lease = await c.var.model.acquire();
    try {
      const { classifier } = lease;
      const { manifest } = classifier;
      let decodeMs = 0;
      let preprocessMs = 0;
      const tensors: Float32Array[] = [];
      for (const [index, bytes] of input.images.entries()) {
        try {
          const prepared = await prepareImage(bytes, manifest.preprocess, manifest.input);
          decodeMs += prepared.decodeMs;
          preprocessMs += prepared.preprocessMs;
          tensors.push(prepared.tensor);
        } catch (error) {
          if (error instanceof ImageError && input.images.length > 1) {
            throw new ApiError(error.status, error.code, `Image ${index + 1} of ${input.images.length}: ${error.message}`, { cause: error });
          }
          throw error;
        }
      }
      const started = performance.now();
      const predictions = classifier.classify(tensors, Math.min(input.topK, manifest.labels.length));
      const inferenceMs = performance.now() - started;
      c.header("Server-Timing", serverTiming({ decode: decodeMs, preprocess: preprocessMs, inference: inferenceMs }));
      if (input.batch) {
        const body: BatchResponse = { model: manifest.id, results: predictions.map((p) => ({ predictions: p })) };
        return c.json(body);
      }
      const body: ClassifyResponse = { model: manifest.id, predictions: predictions[0]! };
      return c.json(body);
    } finally {
      lease.release();
    }
  });
}
