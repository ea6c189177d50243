/** Access to the WebP fixtures (test/fixtures/images/webp.ts, written by scripts/make_webp_fixtures.py). */
import { webpDecoded, webpFiles, webpParity } from "../fixtures/images/webp";

export { webpParity };

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function webpFixture(name: string): Uint8Array {
  const text = webpFiles[name];
  if (text === undefined) throw new Error(`no WebP fixture ${name}`);
  return fromBase64(text);
}

/** What Pillow decodes the fixture to (RGB, alpha over BACKGROUND). */
export function webpPillowPixels(name: string): { height: number; width: number; data: Uint8Array } {
  const entry = webpDecoded[name];
  if (!entry) throw new Error(`no decoded reference for ${name}`);
  return { height: entry[0], width: entry[1], data: fromBase64(entry[2]) };
}
