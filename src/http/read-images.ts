/**
 * Turns a classify request into encoded image bytes and `top_k`, whatever form it came in, each read within
 * bounded memory: raw bytes (`Content-Type: image/*`), multipart `image` fields (a batch), or JSON
 * `{"image": ...}` as Workers AI's image classification accepts. `top_k` from the query, a form field or the
 * JSON body is validated by the schemas /openapi.json publishes (schemas.ts). Decoding is the image
 * pipeline's job, not this file's.
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

/** `top_k` from the query (undefined when absent), checked before the body is read. */
export function queryTopK(c: Context): number | undefined {
  const query = c.req.query();
  return validTopK(classifyQuerySchema.shape.top_k, query.top_k === "" ? undefined : query.top_k);
}

/** A multipart form's top_k text field, checked by the schema /openapi.json publishes; undefined when absent. */
export function formTopK(value: string | undefined): number | undefined {
  return validTopK(classifyFormSchema.shape.top_k, value);
}

export interface JsonImageStream {
  /** The image's bytes as the body's base64 or byte array decodes, read to the body's end. */
  chunks: AsyncIterable<Uint8Array>;
  /** top_k, once `chunks` has been read to its end (the member may follow the image). */
  topK(): number;
}

/**
 * A JSON body's image as a stream of its decoded bytes, parsed as the body arrives: nothing holds the body,
 * its text or the whole image. The JSON's own errors (400) come out of `chunks` where they are found.
 */
export function jsonImageStream(c: Context, fromQuery: number | undefined, options: BodyOptions = {}): JsonImageStream {
  const parser = new JsonImageParser(MAX_STREAMED_IMAGE_BYTES, 0, undefined, true);
  let topK: number | undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of bodyChunks(c.req.raw, MAX_JSON_BODY_BYTES, "JSON body", options)) {
      parser.write(chunk);
      const bytes = parser.take();
      if (bytes.length > 0) yield bytes;
    }
    const body = parser.end();
    topK = validTopK(classifyJsonSchema.shape.top_k, body.topK) ?? fromQuery ?? DEFAULT_TOP_K;
  }
  return {
    chunks: chunks(),
    topK: () => {
      if (topK === undefined) throw new Error("jsonImageStream: topK() before the body was read to its end");
      return topK;
    },
  };
}

/** Checks `value` with the published schema of the field; undefined when absent. */
function validTopK(schema: z.ZodType<number | undefined>, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const result = schema.safeParse(value);
  if (!result.success)
    throw new ApiError(400, "invalid_top_k", `${result.error.issues[0]?.message ?? "top_k is invalid"} (got ${JSON.stringify(value)}).`);
  return result.data;
}

function _nonEmpty(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) throw emptyImage();
  return bytes;
}

export function emptyImage(): ApiError {
  return new ApiError(400, "empty_image", "The request carries no image bytes.");
}
