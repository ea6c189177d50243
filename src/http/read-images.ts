/**
 * Turns a classify request into encoded image bytes, `top_k` and `ood_threshold`, whatever form it came in,
 * each read within bounded memory: raw bytes (`Content-Type: image/*`), multipart `image` fields (a batch), or
 * JSON `{"image": ...}` as Workers AI's image classification accepts. `top_k` and `ood_threshold` from the
 * query, a form field or the JSON body are validated by the schemas /openapi.json publishes (schemas.ts); a
 * value in the body wins over the query's. Decoding is the image pipeline's job, not this file's.
 */
import type { Context } from "hono";
import type { z } from "@hono/zod-openapi";
import { DEFAULT_TOP_K, MAX_JSON_BODY_BYTES, MAX_MULTIPART_BODY_BYTES, MAX_STREAMED_IMAGE_BYTES } from "../config";
import { type BodyOptions, bodyChunks, checkDeclaredLength } from "./body/read-body";
import { JsonImageParser } from "./body/json-image";
import { ApiError } from "./errors";
import { classifyFormSchema, classifyJsonSchema, classifyQuerySchema } from "./schemas";

export type InputForm = "raw" | "multipart" | "json";

export interface ClassifyInput {
  images: Uint8Array[];
  topK: number;
  /** Multipart requests answer with `results` (one per image) even for one image. */
  batch: boolean;
}

/** The input form from Content-Type (415 for any other), and a declared length over its limit refused (413). */
export function inputForm(c: Context): InputForm {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const form: InputForm | undefined =
    type.startsWith("image/") || type === "application/octet-stream"
      ? "raw"
      : type === "multipart/form-data"
        ? "multipart"
        : type === "application/json"
          ? "json"
          : undefined;
  if (!form) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type ${type || "(none)"} is not accepted: send image bytes (image/jpeg, image/png, image/webp), multipart/form-data with "image" fields, or application/json.`,
    );
  }
  checkDeclaredLength(c.req.raw, BODY_LIMITS[form].bytes, BODY_LIMITS[form].what);
  return form;
}

const BODY_LIMITS: Record<InputForm, { bytes: number; what: string }> = {
  raw: { bytes: MAX_STREAMED_IMAGE_BYTES, what: "image" },
  multipart: { bytes: MAX_MULTIPART_BODY_BYTES, what: "multipart body" },
  json: { bytes: MAX_JSON_BODY_BYTES, what: "JSON body" },
};

/** What the query says, checked before the body is read: `top_k` and `ood_threshold`, each undefined when absent. */
export interface QueryOptions {
  topK: number | undefined;
  oodThreshold: number | undefined;
}

export function queryOptions(c: Context): QueryOptions {
  const query = c.req.query();
  const given = (value: string | undefined) => (value === "" ? undefined : value);
  return {
    topK: validTopK(classifyQuerySchema.shape.top_k, given(query.top_k)),
    oodThreshold: validOodThreshold(classifyQuerySchema.shape.ood_threshold, given(query.ood_threshold)),
  };
}

/** A multipart form's top_k text field, checked by the schema /openapi.json publishes; undefined when absent. */
export function formTopK(value: string | undefined): number | undefined {
  return validTopK(classifyFormSchema.shape.top_k, value);
}

/** A multipart form's ood_threshold text field, checked by the published schema; undefined when absent. */
export function formOodThreshold(value: string | undefined): number | undefined {
  return validOodThreshold(classifyFormSchema.shape.ood_threshold, value);
}

export interface JsonImageStream {
  /** The image's bytes as the body's base64 or byte array decodes, read to the body's end. */
  chunks: AsyncIterable<Uint8Array>;
  /** top_k, once `chunks` has been read to its end (the member may follow the image). */
  topK(): number;
  /** ood_threshold (the body's, else the query's; undefined when neither), once `chunks` has been read to its end. */
  oodThreshold(): number | undefined;
}

/**
 * A JSON body's image as a stream of its decoded bytes, parsed as the body arrives: nothing holds the body,
 * its text or the whole image. The JSON's own errors (400) come out of `chunks` where they are found.
 */
export function jsonImageStream(c: Context, fromQuery: QueryOptions, options: BodyOptions = {}): JsonImageStream {
  const parser = new JsonImageParser(MAX_STREAMED_IMAGE_BYTES, 0, undefined, true);
  let topK: number | undefined;
  let oodThreshold: number | undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of bodyChunks(c.req.raw, MAX_JSON_BODY_BYTES, "JSON body", options)) {
      parser.write(chunk);
      const bytes = parser.take();
      if (bytes.length > 0) yield bytes;
    }
    const body = parser.end();
    topK = validTopK(classifyJsonSchema.shape.top_k, body.topK) ?? fromQuery.topK ?? DEFAULT_TOP_K;
    oodThreshold = validOodThreshold(classifyJsonSchema.shape.ood_threshold, body.oodThreshold) ?? fromQuery.oodThreshold;
  }
  return {
    chunks: chunks(),
    topK: () => {
      if (topK === undefined) throw new Error("jsonImageStream: topK() before the body was read to its end");
      return topK;
    },
    oodThreshold: () => {
      if (topK === undefined) throw new Error("jsonImageStream: oodThreshold() before the body was read to its end");
      return oodThreshold;
    },
  };
}

const validTopK = (schema: z.ZodType<number | undefined>, value: unknown) => validField(schema, value, "top_k");
const validOodThreshold = (schema: z.ZodType<number | undefined>, value: unknown) => validField(schema, value, "ood_threshold");

/** Checks `value` with the published schema of the field; undefined when absent; 400 invalid_<field> when wrong. */
function validField(schema: z.ZodType<number | undefined>, value: unknown, field: "top_k" | "ood_threshold"): number | undefined {
  if (value === undefined) return undefined;
  const result = schema.safeParse(value);
  if (!result.success)
    throw new ApiError(
      400,
      `invalid_${field}`,
      `${result.error.issues[0]?.message ?? `${field} is invalid`} (got ${JSON.stringify(value)}).`,
    );
  return result.data;
}

function _nonEmpty(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) throw emptyImage();
  return bytes;
}

export function emptyImage(): ApiError {
  return new ApiError(400, "empty_image", "The request carries no image bytes.");
}
