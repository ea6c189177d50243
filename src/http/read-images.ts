/**
 * Turns a classify request into encoded image bytes and `top_k`, whatever form it came in:
 * raw bytes (`Content-Type: image/*`), multipart `image` fields (a batch), or JSON `{"image": ...}` as
 * Workers AI's image classification accepts. Decoding is the image pipeline's job, not this file's.
 */
import type { Context } from "hono";
import { DEFAULT_TOP_K, MAX_BATCH_IMAGES } from "../config";
import { ApiError } from "./errors";
import { classifyJsonSchema, topKSchema } from "./schemas";

export interface ClassifyInput {
  images: Uint8Array[];
  topK: number;
  /** Multipart requests answer with `results` (one per image) even for one image. */
  batch: boolean;
}

export async function readClassifyRequest(c: Context): Promise<ClassifyInput> {
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const queryTopK = c.req.query("top_k");
  if (type.startsWith("image/") || type === "application/octet-stream") {
    return { images: [await nonEmpty(new Uint8Array(await c.req.arrayBuffer()))], topK: parseTopK(queryTopK), batch: false };
  }
  if (type === "multipart/form-data") return readMultipart(c, queryTopK);
  if (type === "application/json") return readJson(c, queryTopK);
  throw new ApiError(
    415,
    "unsupported_media_type",
    `Content-Type ${type || "(none)"} is not accepted: send image bytes (image/jpeg, image/png), multipart/form-data with "image" fields, or application/json.`,
  );
}

function parseTopK(value: unknown): number {
  if (value === undefined || value === null || value === "") return DEFAULT_TOP_K;
  const result = topKSchema.safeParse(value);
  if (!result.success) throw new ApiError(400, "invalid_top_k", `${result.error.issues[0]?.message ?? "top_k is invalid"} (got ${JSON.stringify(value)}).`);
  return result.data;
}

async function nonEmpty(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes.length === 0) throw new ApiError(400, "empty_image", "The request carries no image bytes.");
  return bytes;
}

async function readMultipart(c: Context, queryTopK: string | undefined): Promise<ClassifyInput> {
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch (cause) {
    throw new ApiError(400, "malformed_multipart", "The multipart/form-data body could not be parsed.", { cause });
  }
  const fields = form.getAll("image");
  if (fields.length === 0) throw new ApiError(400, "missing_image", 'The form has no "image" field.');
  if (fields.length > MAX_BATCH_IMAGES) {
    throw new ApiError(413, "too_many_images", `A batch holds at most ${MAX_BATCH_IMAGES} images; this one has ${fields.length}.`);
  }
  const images: Uint8Array[] = [];
  for (const field of fields) {
    if (typeof field === "string") throw new ApiError(400, "missing_image", 'Each "image" field must be a file, not text.');
    images.push(await nonEmpty(new Uint8Array(await field.arrayBuffer())));
  }
  const formTopK = form.get("top_k");
  return { images, topK: parseTopK(typeof formTopK === "string" ? formTopK : queryTopK), batch: true };
}

async function readJson(c: Context, queryTopK: string | undefined): Promise<ClassifyInput> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch (cause) {
    throw new ApiError(400, "invalid_json", "The body is not valid JSON.", { cause });
  }
  if (typeof body === "object" && body !== null && "top_k" in body) parseTopK((body as { top_k: unknown }).top_k);
  const parsed = classifyJsonSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ApiError(400, "invalid_body", `The JSON body needs "image" as an array of byte values 0-255 or a base64 string (${issue?.path.join(".") || "body"}: ${issue?.message}).`);
  }
  const { image, top_k } = parsed.data;
  const bytes = typeof image === "string" ? decodeBase64(image) : Uint8Array.from(image);
  return { images: [await nonEmpty(bytes)], topK: top_k ?? parseTopK(queryTopK), batch: false };
}

function decodeBase64(text: string): Uint8Array {
  const payload = text.startsWith("data:") ? text.slice(text.indexOf(",") + 1) : text;
  const clean = payload.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
    throw new ApiError(400, "invalid_base64", 'The "image" string is not valid base64.');
  }
  const standard = clean.replace(/-/g, "+").replace(/_/g, "/");
  try {
    const binary = atob(standard.padEnd(Math.ceil(standard.length / 4) * 4, "="));
    return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  } catch (cause) {
    throw new ApiError(400, "invalid_base64", 'The "image" string is not valid base64.', { cause });
  }
}
