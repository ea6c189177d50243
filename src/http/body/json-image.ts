/**
 * A streaming parser for exactly one JSON shape, the classify JSON body (src/http/schemas.ts,
 * classifyJsonSchema): an object with "image", either an array of byte values 0-255 or a base64 string
 * (a data: URL is accepted), and an optional "top_k" and "ood_threshold" (each a number, or a string that the
 * schema reads as one). The image goes straight into a byte buffer as the body
 * arrives, so a Workers AI style `{"image": [n, n, ...]}` body of 16 MiB never exists as a string, a JS array
 * of numbers or a schema's copy: what is held is the image's own bytes.
 *
 * Keys other than these three are refused (400 invalid_body), as the published schema is strict:
 * nothing is skipped unread, so no depth of nesting anywhere needs bounding. Errors: malformed JSON is
 * 400 invalid_json; a wrong shape invalid_body; a number that is not a whole 0-255 invalid_image_bytes;
 * bad base64 invalid_base64; an image over the limit 413 image_too_large.
 */
import { ApiError } from "../errors";
import { Base64Decoder, invalidBase64 } from "./base64";
import { ByteSink } from "../../pipeline/byte-sink";

export interface JsonImageBody {
  image: Uint8Array;
  /** top_k as written (a number or a string), for the schema to check; undefined when absent. */
  topK: unknown;
  /** ood_threshold as written, likewise. */
  oodThreshold: unknown;
}

/** The members besides "image": one scalar each, read into a short token and checked by the schema. */
type ScalarMember = "top_k" | "ood_threshold";

enum S {
  Start, // before '{'
  KeyOrEnd, // after '{'
  Key, // inside a key's quotes
  KeyEscape,
  Colon,
  Value, // before a value
  AfterValue, // after a member's value: ',' or '}'
  NextKey, // after ',': a key's opening quote
  ArrayFirst, // after the image's '[': a number or ']'
  ArrayNext, // after ',' in the array: a number
  Number, // inside a number of the array
  AfterNumber, // after a number: ',' or ']'
  Base64, // inside the image string
  Base64Escape,
  Base64Unicode,
  Scalar, // inside top_k's or ood_threshold's value
  ScalarString,
  End, // after the closing '}'
}

const MAX_KEY = 16; // longer keys are unknown anyway
const MAX_TOKEN = 32; // a number longer than this cannot be a byte value, nor a sensible top_k or threshold

const invalidJson = (why: string) => new ApiError(400, "invalid_json", `The body is not valid JSON: ${why}.`);
const invalidBody = (why: string) =>
  new ApiError(
    400,
    "invalid_body",
    `The JSON body must be {"image": [byte values 0-255] or "base64", "top_k"?: number, "ood_threshold"?: number}: ${why}.`,
  );
/** A scalar member's value that no schema could read as a number: its own 400 code, as the schema's would be. */
const invalidScalar = (member: ScalarMember, why: string) =>
  new ApiError(
    400,
    `invalid_${member}`,
    member === "top_k" ? `top_k ${why}; it must be a whole number of at least 1.` : `ood_threshold ${why}; it must be a finite number.`,
  );
const imageTooLarge = (max: number) =>
  new ApiError(413, "image_too_large", `The image is over its limit of ${max} bytes (${(max / 1048576).toFixed(1)} MiB).`);

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;
const isDigit = (c: number) => c >= 48 && c <= 57;
const isNumberChar = (c: number) => isDigit(c) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69; // - + . e E
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

export class JsonImageParser {
  private state = S.Start;
  private key = "";
  private member: "image" | ScalarMember | undefined;
  private seen = new Set<string>();
  private sink: ByteSink | ChunkSink | undefined;
  private base64: Base64Decoder | undefined;
  /** data: URL handling at the start of the image string: the first characters, then the media type. */
  private prefix: string | undefined = "";
  private mediaType: string | undefined;
  private unicode = "";
  private token = ""; // a number being read, only when it is not a plain 1-3 digit integer
  private value = 0; // the plain integer being read
  private digits = 0;
  private slow = false;
  private scalars: Record<ScalarMember, unknown> = { top_k: undefined, ood_threshold: undefined };
  private index = 0; // bytes of the array so far, for messages

  /**
   * @param maxImageBytes the image's limit (413 past it)
   * @param initialBytes what to commit for the image at once
   */
  constructor(
    private readonly maxImageBytes: number,
    private readonly initialBytes: number,
    /** Called before the image's buffer grows (the memory ledger's account). */
    private readonly commit?: (bytes: number) => void,
    /**
     * Hand the image's bytes out as they are decoded (`take()` after each write) instead of gathering them:
     * the image then streams into its decoder and `end()`'s image is empty.
     */
    private readonly streaming = false,
  ) {}

  write(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) this.step(chunk[i]!);
  }

  end(): JsonImageBody {
    if (this.state !== S.End) throw invalidJson(this.state === S.Start ? "the body is empty" : "it ends early");
    if (!this.sink) throw invalidBody('it has no "image"');
    return {
      image: this.sink instanceof ByteSink ? this.sink.view() : new Uint8Array(0),
      topK: this.scalars.top_k,
      oodThreshold: this.scalars.ood_threshold,
    };
  }

  /** Streaming: the image bytes decoded since the previous take (empty when none). */
  take(): Uint8Array {
    return this.sink instanceof ChunkSink ? this.sink.take() : new Uint8Array(0);
  }

  /** Whether an "image" member has begun, so an empty result can be told from a missing one. */
  get imageBytes(): number {
    return this.sink?.length ?? 0;
  }

  private step(c: number): void {
    switch (this.state) {
      case S.Number:
        if (isDigit(c) && !this.slow) {
          this.value = this.value * 10 + c - 48;
          if (++this.digits > 3 || (this.digits === 2 && this.value < 10)) this.goSlow(); // 4 digits, or a leading 0
          return;
        }
        if (isNumberChar(c)) {
          if (!this.slow) this.goSlow();
          if (this.token.length >= MAX_TOKEN) throw this.badByte(`a ${MAX_TOKEN}+ character number`);
          this.token += String.fromCharCode(c);
          return;
        }
        this.endNumber();
        this.state = S.AfterNumber;
        return this.step(c);
      case S.Base64:
        if (c === 34) return this.endImageString();
        if (c === 92) return this.go(S.Base64Escape);
        if (c < 0x20) throw invalidJson("a control character inside a string");
        return this.imageChar(c);
      case S.AfterNumber:
      case S.ArrayFirst:
      case S.ArrayNext:
        return this.arrayStep(c);
    }
    this.structureStep(c);
  }

  private arrayStep(c: number): void {
    if (isSpace(c)) return;
    if (this.state === S.AfterNumber) {
      if (c === 44) return this.go(S.ArrayNext);
      if (c === 93) return this.go(S.AfterValue);
      throw invalidJson(`expected ',' or ']' after image[${this.index - 1}]`);
    }
    if (isDigit(c) || c === 45) {
      this.state = S.Number;
      this.value = 0;
      this.digits = 0;
      this.slow = false;
      this.token = "";
      return this.step(c);
    }
    if (c === 93 && this.state === S.ArrayFirst) return this.go(S.AfterValue);
    if (c === 91 || c === 123 || c === 34 || c === 116 || c === 102 || c === 110) {
      throw this.badByte("not a number"); // [ { " true false null
    }
    throw invalidJson(`unexpected ${describe(c)} in the image array`);
  }

  private structureStep(c: number): void {
    switch (this.state) {
      case S.Start:
        if (isSpace(c)) return;
        if (c === 123) return this.go(S.KeyOrEnd);
        if (c === 91 || c === 34 || isNumberChar(c) || c === 116 || c === 102 || c === 110)
          throw invalidBody("the body is not a JSON object");
        throw invalidJson(`unexpected ${describe(c)} at the start`);
      case S.KeyOrEnd:
      case S.NextKey:
        if (isSpace(c)) return;
        if (c === 34) {
          this.key = "";
          return this.go(S.Key);
        }
        if (c === 125 && this.state === S.KeyOrEnd) return this.go(S.End);
        throw invalidJson(`expected a key, found ${describe(c)}`);
      case S.Key:
        if (c === 34) return this.endKey();
        if (c === 92) return this.go(S.KeyEscape);
        if (c < 0x20) throw invalidJson("a control character inside a key");
        if (this.key.length <= MAX_KEY) this.key += String.fromCharCode(c);
        return;
      case S.KeyEscape:
        // Escapes in keys only matter for matching the three keys, which need none: keep a marker.
        if (this.key.length <= MAX_KEY) this.key += "\\";
        return this.go(S.Key);
      case S.Colon:
        if (isSpace(c)) return;
        if (c === 58) return this.go(S.Value);
        throw invalidJson(`expected ':' after "${this.key}"`);
      case S.Value:
        return this.valueStart(c);
      case S.AfterValue:
        if (isSpace(c)) return;
        if (c === 44) return this.go(S.NextKey);
        if (c === 125) return this.go(S.End);
        throw invalidJson(`expected ',' or '}' after "${this.member}"`);
      case S.Base64Escape:
        return this.base64Escape(c);
      case S.Base64Unicode:
        this.unicode += String.fromCharCode(c);
        if (this.unicode.length < 4) return;
        if (!/^[0-9a-fA-F]{4}$/.test(this.unicode)) throw invalidJson("a bad \\u escape");
        this.state = S.Base64;
        return this.imageChar(parseInt(this.unicode, 16));
      case S.Scalar: {
        const member = this.member as ScalarMember;
        if (isNumberChar(c) || (c >= 97 && c <= 122)) {
          if (this.token.length >= MAX_TOKEN) throw invalidScalar(member, "is too long to be a number");
          this.token += String.fromCharCode(c);
          return;
        }
        this.scalars[member] = scalar(this.token, member);
        this.state = S.AfterValue;
        return this.step(c);
      }
      case S.ScalarString: {
        const member = this.member as ScalarMember;
        if (c === 34) {
          this.scalars[member] = this.token;
          return this.go(S.AfterValue);
        }
        if (c < 0x20 || c === 92 || this.token.length >= MAX_TOKEN) throw invalidScalar(member, "is not a number");
        this.token += String.fromCharCode(c);
        return;
      }
      case S.End:
        if (isSpace(c)) return;
        throw invalidJson(`${describe(c)} after the closing '}'`);
    }
  }

  private endKey(): void {
    const key = this.key;
    if (key !== "image" && key !== "top_k" && key !== "ood_threshold")
      throw invalidBody(`unknown key ${JSON.stringify(key.slice(0, MAX_KEY))}`);
    if (this.seen.has(key)) throw invalidBody(`"${key}" appears twice`);
    this.seen.add(key);
    this.member = key;
    this.state = S.Colon;
  }

  private valueStart(c: number): void {
    if (isSpace(c)) return;
    if (this.member === "top_k" || this.member === "ood_threshold") {
      this.token = "";
      if (c === 91 || c === 123) throw invalidScalar(this.member, "is not a number");
      if (c === 34) return this.go(S.ScalarString);
      this.state = S.Scalar;
      return this.step(c);
    }
    this.sink = this.streaming
      ? new ChunkSink(this.maxImageBytes, () => imageTooLarge(this.maxImageBytes))
      : new ByteSink(this.maxImageBytes, this.initialBytes, () => imageTooLarge(this.maxImageBytes), this.commit);
    if (c === 91) return this.go(S.ArrayFirst);
    if (c === 34) {
      this.base64 = new Base64Decoder(this.sink);
      return this.go(S.Base64);
    }
    throw invalidBody('"image" must be an array of byte values 0-255 or a base64 string');
  }

  /** A state transition, as one statement where a case ends in it. */
  private go(state: S): void {
    this.state = state;
  }

  private goSlow(): void {
    this.slow = true;
    this.token = this.digits > 0 ? String(this.value).padStart(this.digits, "0") : "";
  }

  private endNumber(): void {
    let value = this.value;
    if (this.slow) {
      if (!JSON_NUMBER.test(this.token)) throw invalidJson(`image[${this.index}] is not a JSON number (${this.token})`);
      value = Number(this.token);
      if (!Number.isInteger(value) || value < 0 || value > 255) throw this.badByte(this.token);
    } else if (this.value > 255) {
      throw this.badByte(String(this.value));
    }
    this.sink!.push(value);
    this.index++;
  }

  private badByte(what: string): ApiError {
    return new ApiError(400, "invalid_image_bytes", `image[${this.index}] is ${what}; each byte must be a whole number from 0 to 255.`);
  }

  private base64Escape(c: number): void {
    this.state = S.Base64;
    if (c === 117) {
      this.unicode = "";
      return this.go(S.Base64Unicode);
    }
    // \/ is a '/' (some encoders escape it); \n \r \t are whitespace base64 skips; \" \\ \b \f are not base64.
    const escaped = { 47: 47, 110: 10, 114: 13, 116: 9, 34: 34, 92: 92, 98: 8, 102: 12 }[c];
    if (escaped === undefined) throw invalidJson("a bad escape in a string");
    this.imageChar(escaped);
  }

  /** One character of the image string: a data: URL's prefix, or base64. */
  private imageChar(c: number): void {
    if (this.prefix === undefined) return this.base64!.push(c);
    if (this.mediaType !== undefined) {
      if (c !== 44) {
        if (this.mediaType.length >= 256) throw invalidBase64("its data: URL has no ',' within 256 characters");
        this.mediaType += String.fromCharCode(c);
        return;
      }
      if (!/;base64$/i.test(this.mediaType)) throw invalidBase64("its data: URL is not base64-encoded");
      this.prefix = undefined;
      return;
    }
    this.prefix += String.fromCharCode(c);
    if (this.prefix.toLowerCase() === "data:") {
      this.mediaType = "";
    } else if (!"data:".startsWith(this.prefix.toLowerCase())) {
      this.flushPrefix();
    }
  }

  private flushPrefix(): void {
    const prefix = this.prefix ?? "";
    this.prefix = undefined;
    for (let i = 0; i < prefix.length; i++) this.base64!.push(prefix.charCodeAt(i));
  }

  private endImageString(): void {
    if (this.mediaType !== undefined && this.prefix !== undefined) throw invalidBase64("its data: URL has no ','");
    this.flushPrefix();
    this.base64!.end();
    this.state = S.AfterValue;
  }
}

/**
 * Decoded image bytes on their way to a streaming decoder: what one write decodes (at most 3/4 of a body chunk)
 * is handed out by take(), so nothing grows with the image. `length` counts every byte, for the image's limit.
 */
class ChunkSink {
  length = 0;
  private buffer = new Uint8Array(16 * 1024);
  private fill = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly overflow: () => Error,
  ) {}

  push(byte: number): void {
    if (++this.length > this.maxBytes) throw this.overflow();
    if (this.fill === this.buffer.length) {
      const grown = new Uint8Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.fill++] = byte;
  }

  take(): Uint8Array {
    const out = this.buffer.slice(0, this.fill);
    this.fill = 0;
    return out;
  }
}

/** A top_k or ood_threshold written without quotes: a JSON number, or a literal (the schema then refuses it). */
function scalar(token: string, member: ScalarMember): unknown {
  if (token === "null") return null;
  if (token === "true" || token === "false") return token === "true";
  if (!JSON_NUMBER.test(token)) throw invalidJson(`${member} is not a JSON value (${token})`);
  return Number(token);
}

function describe(c: number): string {
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, "0")}`;
}
