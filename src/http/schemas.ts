/**
 * The API's shapes, defined once: they validate requests (query, form fields, JSON members), type the
 * handlers' answers and generate /openapi.json.
 */
import { z } from "@hono/zod-openapi";
import { DEFAULT_TOP_K, MAX_BATCH_IMAGES, MAX_IMAGE_BYTES } from "../config";

const TOP_K_MESSAGE = "top_k must be a whole number of at least 1";
/** A number written in decimal, as JSON writes it (JS's Number() would also read "0x10", "1_0" as numbers). */
const DECIMAL = /^\s*-?\d+(\.\d+)?([eE][+-]?\d+)?\s*$/;

/**
 * A JSON number, or text that spells one (the query string and form fields are text). Not a boolean, null or an
 * array, which a plain coercion would turn into 1, 0 or a number: those become NaN first and fail as numbers.
 */
export const topKSchema = z
  .preprocess(
    (value) => (typeof value === "number" || (typeof value === "string" && DECIMAL.test(value)) ? value : Number.NaN),
    z.coerce.number({ error: TOP_K_MESSAGE }).int(TOP_K_MESSAGE).min(1, TOP_K_MESSAGE).max(1000, "top_k must be at most 1000"),
  )
  .openapi({ description: "How many labels to return, highest score first.", example: DEFAULT_TOP_K });

export const classifyQuerySchema = z.object({ top_k: topKSchema.optional() });

/**
 * The multipart form. Its file parts are split from the body without copies (src/http/body/multipart.ts);
 * its text field `top_k` is validated by this schema.
 */
export const classifyFormSchema = z.object({
  image: z
    .array(z.string().openapi({ format: "binary" }))
    .min(1)
    .max(MAX_BATCH_IMAGES)
    .openapi({
      description: `One or more image files (JPEG, PNG or WebP): a batch of at most ${MAX_BATCH_IMAGES}, ${MAX_IMAGE_BYTES} bytes together.`,
    }),
  top_k: topKSchema.optional(),
});

/**
 * The JSON body. "image" is parsed as the body streams in, straight into bytes (src/http/body/json-image.ts,
 * which enforces exactly this shape: no JS array of numbers is ever built for zod to check); `top_k` is
 * validated by this schema. Strict: other keys are refused.
 */
export const classifyJsonSchema = z
  .strictObject({
    image: z
      .union([
        z.array(z.number().int().min(0).max(255)).openapi({ description: "The image file's bytes, as numbers 0-255." }),
        z.string().openapi({ description: "The image file's bytes, base64 (a data: URL prefix is accepted)." }),
      ])
      .openapi({
        description: `The encoded image (JPEG, PNG or WebP), as Workers AI's image classification accepts it; at most ${MAX_IMAGE_BYTES} bytes decoded.`,
      }),
    top_k: topKSchema.optional(),
  })
  .openapi("ClassifyJsonRequest");

export const predictionSchema = z
  .object({ label: z.string().openapi({ example: "Ankle boot" }), score: z.number().openapi({ example: 0.93 }) })
  .openapi("Prediction");

export const classifyResponseSchema = z
  .object({ model: z.string().openapi({ example: "alexnet-fmnist-64-v1" }), predictions: z.array(predictionSchema) })
  .openapi("ClassifyResponse");

export const batchResponseSchema = z
  .object({ model: z.string(), results: z.array(z.object({ predictions: z.array(predictionSchema) })) })
  .openapi("ClassifyBatchResponse");

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "undecodable_image" }),
      message: z.string().openapi({ example: "The image could not be decoded: the JPEG data ends early." }),
    }),
  })
  .openapi("Error");

export const modelInfoSchema = z
  .object({
    id: z.string(),
    input: z.object({ height: z.number(), width: z.number(), channels: z.number() }),
    labels: z.array(z.string()),
    metrics: z.record(z.string(), z.unknown()),
    training: z.record(z.string(), z.unknown()),
    quantization: z.record(z.string(), z.unknown()),
  })
  .openapi("Model");

export const statusSchema = z.object({ status: z.string(), model: z.string().optional() }).openapi("Status");

/** /readyz: the status plus what the Worker counts of its own memory (src/http/memory-report.ts); the inspector sees the rest. */
export const readySchema = statusSchema
  .extend({
    memory: z
      .object({
        model_wasm_bytes: z.number().int(),
        decoder_wasm_bytes: z.number().int(),
        decoder_wasm_peak_bytes: z.number().int(),
        reserved_bytes: z.number().int(),
        budget_bytes: z.number().int(),
      })
      .optional(),
  })
  .openapi("Ready");

export type ClassifyResponse = z.infer<typeof classifyResponseSchema>;
export type BatchResponse = z.infer<typeof batchResponseSchema>;
export type ModelInfo = z.infer<typeof modelInfoSchema>;
