/**
 * Base64 decoded one character at a time, as a JSON string streams in (RFC 4648 section 4, and the URL-safe
 * alphabet of section 5, which some clients send): no string of the whole payload, no regex pass, no atob
 * copy, no intermediate array. Whitespace is skipped (MIME-wrapped base64); padding is optional but, when
 * present, must complete the last quantum.
 */
import { ApiError } from "../errors";
/** Where decoded bytes go. */
export interface BytePush {
  push(byte: number): void;
}

const WHITESPACE = -2;
const INVALID = -1;
const PAD = 61; // '='

/** Each ASCII code's 6-bit value, WHITESPACE or INVALID. */
const VALUES = (() => {
  const table = new Int8Array(128).fill(INVALID);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  table[45] = 62; // '-', URL-safe '+'
  table[95] = 63; // '_', URL-safe '/'
  for (const c of [9, 10, 13, 32]) table[c] = WHITESPACE;
  return table;
})();

export const invalidBase64 = (why: string): ApiError =>
  new ApiError(400, "invalid_base64", `The "image" string is not valid base64: ${why}.`);

export class Base64Decoder {
  private bits = 0; // pending bits in `acc`, fewer than 8 after each character
  private acc = 0;
  private sextets = 0;
  private padding = 0;

  constructor(private readonly sink: BytePush) {}

  /** One character (a UTF-16 code unit of the JSON string). */
  push(code: number): void {
    const value = code < 128 ? VALUES[code]! : INVALID;
    if (value >= 0) {
      if (this.padding > 0) throw invalidBase64("characters follow its '=' padding");
      this.acc = ((this.acc << 6) | value) & 0xfff;
      this.bits += 6;
      this.sextets++;
      if (this.bits >= 8) {
        this.bits -= 8;
        this.sink.push((this.acc >> this.bits) & 0xff);
      }
    } else if (code === PAD) {
      if (++this.padding > 2) throw invalidBase64("more than two '=' at its end");
    } else if (value !== WHITESPACE) {
      throw invalidBase64(`it holds the character ${JSON.stringify(String.fromCharCode(code))}`);
    }
  }

  /** Checks the last quantum once the string has ended. */
  end(): void {
    const rest = this.sextets % 4;
    if (rest === 1) throw invalidBase64("its length leaves a single character over");
    if (this.padding > 0 && (rest + this.padding) % 4 !== 0) throw invalidBase64("its '=' padding does not match its length");
  }
}
