import { describe, expect, it } from "vitest";
import { ImageError, prepareImage } from "../../src/image";
import { chunk, ihdr, pngOf, scanlines, zlibStored } from "../support/png";
import { identity } from "./fixtures";

const { preprocess, input } = identity(2, 2);
const IEND = chunk("IEND", new Uint8Array());
const idat2x2 = () => chunk("IDAT", zlibStored(scanlines(2, 6, 200)));
const text = () => chunk("tEXt", new TextEncoder().encode("Comment\0hello"));

async function outcome(bytes: Uint8Array): Promise<string> {
  try {
    await prepareImage(bytes, preprocess, input);
    return "decoded";
  } catch (error) {
    if (error instanceof ImageError) return `${error.status} ${error.message}`;
    throw error;
  }
}

describe("a PNG's chunks must come in the order the format defines", () => {
  it("a well-ordered PNG decodes (the fixture every case below breaks)", async () => {
    expect(await outcome(pngOf(chunk("IHDR", ihdr(2, 2)), text(), idat2x2(), text(), IEND))).toBe("decoded");
  });

  it("a second IHDR is refused, not decoded at the size it claims", async () => {
    // The attack, small: the size probe read 1x1, the decoder used the second header's 2x2.
    const twoHeaders = pngOf(chunk("IHDR", ihdr(1, 1)), chunk("IHDR", ihdr(2, 2)), idat2x2(), IEND);
    expect(await outcome(twoHeaders)).toBe("422 The PNG has more than one header chunk.");
  });

  it("a 1x1 header followed by a 20000x20000 one is refused before any raster is allocated", async () => {
    const bomb = pngOf(chunk("IHDR", ihdr(1, 1)), chunk("IHDR", ihdr(20000, 20000)), chunk("IDAT", zlibStored(scanlines(1, 3))), IEND);
    expect(await outcome(bomb)).toBe("422 The PNG has more than one header chunk.");
  });

  it("a chunk before IHDR is refused", async () => {
    expect(await outcome(pngOf(text(), chunk("IHDR", ihdr(2, 2)), idat2x2(), IEND))).toBe(
      "422 The PNG does not start with its header chunk.",
    );
  });

  it("a palette after the image data is refused", async () => {
    const palette = chunk("PLTE", Uint8Array.of(255, 0, 0, 0, 255, 0));
    const indexed = chunk("IDAT", zlibStored(scanlines(2, 2, 1)));
    const late = pngOf(chunk("IHDR", ihdr(2, 2, 3)), indexed, palette, IEND);
    expect(await outcome(late)).toBe("422 The PNG's palette comes after its image data.");
    expect(await outcome(pngOf(chunk("IHDR", ihdr(2, 2, 3)), palette, indexed, IEND))).toBe("decoded");
  });

  it("image data split by another chunk is refused", async () => {
    const data = zlibStored(scanlines(2, 6, 200));
    const split = pngOf(chunk("IHDR", ihdr(2, 2)), chunk("IDAT", data.subarray(0, 5)), text(), chunk("IDAT", data.subarray(5)), IEND);
    expect(await outcome(split)).toBe("422 The PNG's image data chunks are not contiguous.");
  });

  it("nothing after IEND is read", async () => {
    const trailing = pngOf(
      chunk("IHDR", ihdr(2, 2)),
      idat2x2(),
      IEND,
      chunk("IHDR", ihdr(20000, 20000)),
      chunk("IDAT", new Uint8Array(10)),
    );
    expect(await outcome(trailing)).toBe("decoded");
  });

  it("a chunk whose length runs past the end of the file is refused with its name", async () => {
    const lying = pngOf(chunk("IHDR", ihdr(2, 2)), idat2x2(), IEND);
    const at = 8 + 25; // the IDAT chunk's length field
    new DataView(lying.buffer).setUint32(at, 1 << 20);
    expect(await outcome(lying)).toBe("422 The PNG is truncated: its IDAT chunk claims 1048576 bytes, more than the file holds.");
  });
});
