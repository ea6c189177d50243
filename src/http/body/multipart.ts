/**
 * multipart/form-data (RFC 7578) split over a body already held in one buffer: each part is a view of that
 * buffer, never a copy, so a batch of images is held once. (The runtime's `formData()` keeps the body and
 * a File copy of every part: twice.) Only what the classify route reads is kept: "image" file parts and the
 * "top_k" and "ood_threshold" text fields; other fields are ignored, as a form's extra fields usually are.
 */
import { ApiError } from "../errors";

export interface MultipartForm {
  images: Uint8Array[];
  /** top_k as written, if the form has it. */
  topK: string | undefined;
  /** ood_threshold as written, if the form has it. */
  oodThreshold: string | undefined;
}

/** The text fields the classify route reads. */
export type TextField = "top_k" | "ood_threshold";

export const malformedMultipart = (why: string) =>
  new ApiError(400, "malformed_multipart", `The multipart/form-data body could not be parsed: ${why}.`);
const malformed = malformedMultipart;
export const CRLF_CRLF = Uint8Array.of(13, 10, 13, 10);
/** A part's headers with the blank line that ends them; real ones are a few hundred bytes. */
export const MAX_PART_HEADERS = 8 * 1024;
/** What is read of a top_k or ood_threshold field: a number needs a few bytes; the rest is not looked at. */
export const MAX_TOP_K_BYTES = 64;

/** The delimiter before every boundary but a first one that opens the body: CRLF "--" boundary. */
export function multipartDelimiter(boundary: string): Uint8Array {
  return new TextEncoder().encode(`\r\n--${boundary}`);
}

/**
 * The field a part holds, from its header bytes: "image" (a file, within the batch: `images` counts the
 * image parts before this one), a text field the route reads, or undefined for one it does not.
 */
export function partField(
  headerBytes: Uint8Array,
  images: number,
  maxImages: number,
  tooMany: (count: number) => Error,
): "image" | TextField | undefined {
  const headers = new TextDecoder().decode(headerBytes);
  const disposition = /^content-disposition:\s*form-data(.*)$/im.exec(headers)?.[1] ?? "";
  const name = param(disposition, "name");
  if (name === "image") {
    if (images + 1 > maxImages) throw tooMany(images + 1);
    // A file part has a filename (RFC 7578 4.2); an "image" sent as a text field is a client mistake.
    if (param(disposition, "filename") === undefined)
      throw new ApiError(400, "missing_image", 'Each "image" field must be a file, not text.');
    return "image";
  }
  return name === "top_k" || name === "ood_threshold" ? name : undefined;
}

/** The boundary from a Content-Type such as `multipart/form-data; boundary="abc"` (RFC 2046 5.1.1). */
export function multipartBoundary(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw malformed("its Content-Type names no boundary");
  return boundary;
}

export function parseMultipart(body: Uint8Array, boundary: string, maxImages: number, tooMany: (count: number) => Error): MultipartForm {
  const delimiter = multipartDelimiter(boundary);
  // The first boundary may open the body without the CRLF before it (no preamble).
  const dashBoundary = delimiter.subarray(2);
  let at: number;
  if (startsWith(body, dashBoundary, 0)) at = dashBoundary.length;
  else {
    const found = indexOf(body, delimiter, 0);
    if (found < 0) throw malformed("no boundary was found");
    at = found + delimiter.length;
  }
  const form: MultipartForm = { images: [], topK: undefined, oodThreshold: undefined };
  let imageCount = 0;
  for (;;) {
    if (body[at] === 45 && body[at + 1] === 45) return form; // "--": the closing boundary
    at = skipLineEnd(body, at);
    const headersEnd = indexOf(body, CRLF_CRLF, at, at + MAX_PART_HEADERS);
    if (headersEnd < 0) throw malformed("a part's headers do not end");
    const contentStart = headersEnd + 4;
    const contentEnd = indexOf(body, delimiter, contentStart);
    if (contentEnd < 0) throw malformed("the body ends inside a part");
    const field = partField(body.subarray(at, headersEnd), imageCount, maxImages, tooMany);
    if (field === "image") {
      imageCount++;
      form.images.push(body.subarray(contentStart, contentEnd));
    } else if (field) {
      const value = new TextDecoder().decode(body.subarray(contentStart, Math.min(contentEnd, contentStart + MAX_TOP_K_BYTES)));
      if (field === "top_k") form.topK = value;
      else form.oodThreshold = value;
    }
    at = contentEnd + delimiter.length;
  }
}

function param(disposition: string, key: string): string | undefined {
  const match = new RegExp(`;\\s*${key}="([^"]*)"|;\\s*${key}=([^;\\s]*)`, "i").exec(disposition);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** After a boundary: optional transport padding (spaces, tabs), then CRLF. */
function skipLineEnd(body: Uint8Array, at: number): number {
  while (body[at] === 32 || body[at] === 9) at++;
  if (body[at] !== 13 || body[at + 1] !== 10) throw malformed("a boundary is not followed by a line end");
  return at + 2;
}

export function startsWith(body: Uint8Array, needle: Uint8Array, at: number): boolean {
  if (at + needle.length > body.length) return false;
  for (let i = 0; i < needle.length; i++) if (body[at + i] !== needle[i]) return false;
  return true;
}

/** The first index of `needle` in body[from, to), or -1; scans for its first byte with the native indexOf. */
export function indexOf(body: Uint8Array, needle: Uint8Array, from: number, to = body.length): number {
  const first = needle[0]!;
  for (let at = body.indexOf(first, from); at >= 0 && at + needle.length <= to; at = body.indexOf(first, at + 1)) {
    if (startsWith(body, needle, at)) return at;
  }
  return -1;
}
