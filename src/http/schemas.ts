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

const OOD_THRESHOLD_MESSAGE = "ood_threshold must be a finite number";

/**
 * The request's own threshold for `unknown`: a number (JSON) or text that spells one (query, form field), as
 * top_k; booleans, null, NaN and infinities are refused. Any finite value is allowed: ood_score is measured in
 * units of the in-distribution spread, so a negative one is meaningful (it calls most images unknown).
 */
export const oodThresholdSchema = z
  .preprocess(
    (value) => (typeof value === "number" || (typeof value === "string" && DECIMAL.test(value)) ? value : Number.NaN),
    z.coerce.number({ error: OOD_THRESHOLD_MESSAGE }).finite(OOD_THRESHOLD_MESSAGE),
  )
  .openapi({
    description:
      "The ood_score above which the answer says `unknown: true`, instead of the model's own threshold (its manifest's " +
      "`calibration.ood.threshold`, fitted so that 95% of held-out in-distribution images pass). " +
      "Higher calls fewer images unknown; a very large value turns the verdict off. A model without a calibration accepts it " +
      "and ignores it: its answers say `ood_score: null`, `unknown: false` whatever the threshold.",
    example: 2,
  });

export const classifyQuerySchema = z.object({ top_k: topKSchema.optional(), ood_threshold: oodThresholdSchema.optional() });

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
  ood_threshold: oodThresholdSchema.optional(),
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
    ood_threshold: oodThresholdSchema.optional(),
  })
  .openapi("ClassifyJsonRequest");

export const predictionSchema = z
  .object({ label: z.string().openapi({ example: "Ankle boot" }), score: z.number().openapi({ example: 0.93 }) })
  .openapi("Prediction");

/** What every answer says of one image besides its labels: whether it looks like the training data. */
const verdictFields = {
  unknown: z.boolean().openapi({
    description:
      "true when ood_score is above the threshold (the request's ood_threshold, else the model's own): the image looks like " +
      "nothing the model was trained on, so its labels are the closest of the model's classes, not an identification. " +
      "Always false for a model without a calibration.",
    example: false,
  }),
  ood_score: z
    .number()
    .nullable()
    .openapi({
      description:
        "Out-of-distribution score: higher = less like the training data. The larger of two parts (the network's energy, " +
        "the picture's layout), each 0 at the in-distribution median and 1 at its 95th percentile (docs/model-package.md, " +
        "calibration). null for a model without a calibration.",
      example: -0.4,
    }),
};

export const classifyResultSchema = z.object({ predictions: z.array(predictionSchema), ...verdictFields }).openapi("ClassifyResult", {
  description:
    "One image's answer. With a calibrated model, scores are calibrated probabilities (softmax of the logits over the " +
    "calibration's temperature, summing to 1 over all labels); without one, the model's own output.",
});

export const classifyResponseSchema = z
  .object({ model: z.string().openapi({ example: "alexnet-fmnist-64-v8" }), predictions: z.array(predictionSchema), ...verdictFields })
  .openapi("ClassifyResponse");

export const batchResponseSchema = z.object({ model: z.string(), results: z.array(classifyResultSchema) }).openapi("ClassifyBatchResponse");

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "undecodable_image" }),
      message: z.string().openapi({ example: "The image could not be decoded: the JPEG data ends early." }),
    }),
  })
  .openapi("Error");

const reliabilityBinSchema = z.object({
  lo: z.number(),
  hi: z.number(),
  count: z.number().int(),
  accuracy: z.number().nullable().openapi({ description: "Share right among the bin's images; null for an empty bin." }),
  confidence: z.number().nullable().openapi({ description: "Mean top score of the bin's images; null for an empty bin." }),
});

/** The package's report.json (training/report.py, docs/model-package.md "report"), as the exporter writes it. */
export const modelReportSchema = z
  .object({
    dataset: z.string().openapi({ example: "fashion-mnist/test images 5000-9999" }),
    count: z.number().int(),
    accuracy: z.number(),
    per_class: z.array(
      z.object({ label: z.string(), support: z.number().int(), precision: z.number(), recall: z.number(), f1: z.number() }),
    ),
    confusion: z
      .array(z.array(z.number().int()))
      .optional()
      .openapi({ description: "Counts: row = true label, column = predicted, in label order. Left out above 100 labels." }),
    reliability: z
      .object({ bins: z.number().int(), before: z.array(reliabilityBinSchema), after: z.array(reliabilityBinSchema).optional() })
      .openapi({ description: "The reliability diagram's equal-width bins of the top score, raw (before) and calibrated (after)." }),
    ece: z.object({ before: z.number(), after: z.number().optional() }).openapi({ description: "Expected calibration error, 15 bins." }),
    temperature: z.number().optional(),
    curves: z
      .record(z.string(), z.array(z.number().nullable()))
      .optional()
      .openapi({ description: "The training curves, one value per epoch: epoch, lr, train_loss, train_top1, test_loss, test_top1, ..." }),
    ood: z
      .object({
        method: z.string(),
        threshold: z.number(),
        flagged_unknown: z.number().nullable().optional(),
        sets: z.record(
          z.string(),
          z.object({ count: z.number().int(), auroc: z.number(), fpr_at_95_tpr: z.number(), flagged_unknown: z.number() }),
        ),
      })
      .optional(),
    thumbnails: z
      .object({
        file: z.string(),
        tile: z.number().int(),
        columns: z.number().int(),
        count: z.number().int(),
        cells: z.array(z.array(z.array(z.number().int()))),
      })
      .optional()
      .openapi({
        description:
          "Where each confusion cell's thumbnails lie in thumbnails_url's sprite: cells[true][predicted] lists tile numbers; " +
          "tile k is the square of side `tile` at column k % columns, row floor(k / columns).",
      }),
  })
  .openapi("ModelReport");

export const modelInfoSchema = z
  .object({
    id: z.string(),
    input: z.object({ height: z.number(), width: z.number(), channels: z.number() }),
    labels: z.array(z.string()),
    metrics: z.record(z.string(), z.unknown()),
    training: z.record(z.string(), z.unknown()),
    quantization: z.record(z.string(), z.unknown()),
    calibration: z
      .object({
        temperature: z.number().openapi({ description: "Scores are softmax(logits / temperature)." }),
        ood_threshold: z
          .number()
          .openapi({ description: "The ood_score above which an answer says unknown, unless a request sets its own." }),
        tpr: z.number().optional().openapi({ description: "Share of held-out in-distribution images the threshold keeps." }),
        fitted_on: z.string().optional(),
        metrics: z.record(z.string(), z.unknown()).optional(),
      })
      .nullable()
      .openapi({ description: "The package's calibration; null for a package without one (its answers are never unknown)." }),
    report: modelReportSchema
      .nullable()
      .openapi({ description: "The package's report card; null when it has none, or when it cannot be read (too large, damaged)." }),
    thumbnails_url: z.string().nullable().openapi({
      description: "Path of the report's thumbnail sprite (PNG), null without one.",
      example: "/v1/models/alexnet-fmnist-64-v8/thumbnails.png",
    }),
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
export type ClassifyResult = z.infer<typeof classifyResultSchema>;
export type ModelInfo = z.infer<typeof modelInfoSchema>;
export type ModelReport = z.infer<typeof modelReportSchema>;
