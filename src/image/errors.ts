/**
 * Image failures a client can act on: a stable machine-readable code, a sentence for a person, and the HTTP
 * status the HTTP layer answers with (the API's error shape, README "API"). Nothing in src/image throws anything else for
 * a bad image: every decoder failure is mapped to one of these.
 */

/** The stable codes; never rename one, clients match on them. */
export type ImageErrorCode = "unsupported_media_type" | "image_too_large" | "undecodable_image" | "too_many_scans";

const STATUS = {
  unsupported_media_type: 415,
  image_too_large: 413,
  undecodable_image: 422,
  // A progressive JPEG with more scans than any encoder writes (each one is a pass over the whole image):
  // refused before it can cost much time (src/image/jpeg-stream.ts, docs/jpeg-decoder.md).
  too_many_scans: 422,
} as const satisfies Record<ImageErrorCode, number>;

export class ImageError extends Error {
  override name = "ImageError";
  readonly code: ImageErrorCode;
  readonly status: 413 | 415 | 422;

  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = STATUS[code];
  }
}

/** 422: the bytes claim to be a JPEG, PNG or WebP but cannot be turned into the picture they claim. */
export function undecodable(message: string, cause?: unknown): ImageError {
  return new ImageError("undecodable_image", message, cause === undefined ? undefined : { cause });
}
