import { describe, expect, it } from "vitest";
import { multipartBoundary, parseMultipart } from "../../src/http/body/multipart";
import { MAX_PARTS, multipartImages } from "../../src/http/body/multipart-stream";
import { ApiError } from "../../src/http/errors";
import { mulberry32 } from "../support/random";

/** A multipart body as the runtime's own FormData serialises it. */
async function serialise(form: FormData): Promise<{ body: Uint8Array; boundary: string }> {
  const request = new Request("https://x/", { method: "POST", body: form });
  return { body: new Uint8Array(await request.arrayBuffer()), boundary: multipartBoundary(request.headers.get("content-type")!) };
}

const tooMany = (count: number) => new ApiError(413, "too_many_images", `too many: ${count}`);
const text = (s: string) => new TextEncoder().encode(s);

/** The body cut into chunks of `size(i)` bytes, each a copy of its own, as a network read would give. */
async function* chunked(
  body: Uint8Array,
  size: (i: number) => number,
  seen?: { bytes: number; returned: boolean },
): AsyncGenerator<Uint8Array> {
  try {
    for (let at = 0, i = 0; at < body.length; i++) {
      const chunk = body.slice(at, at + Math.max(1, size(i)));
      at += chunk.length;
      if (seen) seen.bytes += chunk.length;
      yield chunk;
    }
  } finally {
    if (seen) seen.returned = true;
  }
}

type Outcome = { images: Uint8Array[]; topK: string | undefined; oodThreshold?: string } | { status: number; code: string };

function failure(error: unknown): Outcome {
  if (error instanceof ApiError) return { status: error.status, code: error.code };
  throw error;
}

function whole(body: Uint8Array, boundary: string, maxImages = 8): Outcome {
  try {
    const { images, topK, oodThreshold } = parseMultipart(body, boundary, maxImages, tooMany);
    return { images: images.map((i) => i.slice()), topK, ...(oodThreshold !== undefined && { oodThreshold }) };
  } catch (error) {
    return failure(error);
  }
}

async function streamed(chunks: AsyncIterable<Uint8Array>, boundary: string, maxImages = 8): Promise<Outcome> {
  const images: Uint8Array[] = [];
  let topK: string | undefined;
  let oodThreshold: string | undefined;
  const onField = (name: string, value: string) => {
    if (name === "top_k") topK = value;
    else oodThreshold = value;
  };
  try {
    for await (const image of multipartImages(chunks, boundary, { maxImages, tooMany, onField })) {
      expect(image.index).toBe(images.length);
      const pieces: Uint8Array[] = [];
      for await (const piece of image.bytes) pieces.push(piece);
      images.push(join(pieces));
    }
    return { images, topK, ...(oodThreshold !== undefined && { oodThreshold }) };
  } catch (error) {
    return failure(error);
  }
}

function join(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Bytes made to look like the body's own syntax: CRLFs, dashes, and the start of a delimiter. */
function trickyBytes(length: number, seed: number, boundary: string): Uint8Array {
  const random = mulberry32(seed);
  const out = new Uint8Array(length);
  const near = text(`\r\n--${boundary}`);
  for (let i = 0; i < length; i++) {
    const r = random();
    if (r < 0.05 && i + near.length <= length) {
      // All of a delimiter but its last byte, which is changed.
      out.set(near, i);
      out[i + near.length - 1] = 33;
      i += near.length - 1;
      continue;
    }
    out[i] = r < 0.2 ? [13, 10, 45][Math.floor(random() * 3)]! : Math.floor(random() * 256);
  }
  return out;
}

async function formOf(images: number, seed: number, topKFirst: boolean): Promise<{ body: Uint8Array; boundary: string }> {
  // The runtime picks a random boundary as it serialises: the images are filled with all but the last byte of
  // a delimiter of `probe`, and the serialised body's boundary is then swapped for `probe` (same length), as
  // if the runtime had picked it.
  const probe = (await serialise(new FormData())).boundary;
  const random = mulberry32(seed);
  const form = new FormData();
  if (topKFirst) form.append("top_k", String(1 + Math.floor(random() * 9)));
  form.append("comment", "a text field the route does not read\r\n--");
  for (let i = 0; i < images; i++) {
    const size = [0, 1, 70, 3000, 40_000][Math.floor(random() * 5)]!;
    form.append("image", new File([trickyBytes(size, seed * 31 + i, probe)], `${i}.png`, { type: "image/png" }));
    if (i % 3 === 1) form.append("note", "x".repeat(Math.floor(random() * 200)));
  }
  if (!topKFirst) form.append("top_k", "  5 ");
  form.append("ood_threshold", (random() * 4 - 1).toFixed(3));
  const { body, boundary } = await serialise(form);
  expect(boundary.length).toBe(probe.length);
  const swapped = body.slice();
  const from = text(boundary);
  for (let at = swapped.indexOf(from[0]!); at >= 0; at = swapped.indexOf(from[0]!, at + 1)) {
    if (from.every((b, i) => swapped[at + i] === b)) swapped.set(text(probe), at);
  }
  expect(whole(swapped, probe)).toEqual(whole(body, boundary));
  return { body: swapped, boundary: probe };
}

describe("multipart bodies parsed as they arrive", () => {
  const cases = [1, 4, 8].flatMap((images) => [true, false].map((topKFirst) => ({ images, topKFirst })));

  it.each(cases)(
    "$images images, top_k first: $topKFirst; the same parts as the whole-body parser, however chunked",
    async ({ images, topKFirst }) => {
      const { body, boundary } = await formOf(images, images * 7 + (topKFirst ? 1 : 0), topKFirst);
      const expected = whole(body, boundary);
      expect("images" in expected && expected.images.length).toBe(images);
      expect("oodThreshold" in expected && expected.oodThreshold).toMatch(/^-?\d\.\d{3}$/);
      const random = mulberry32(images);
      const sizings: ((i: number) => number)[] = [
        () => 7,
        () => 1 + Math.floor(random() * 300),
        () => 1 + Math.floor(random() * 9000),
        () => 65536,
      ];
      // 1-byte chunks cost a generator round-trip a byte: one body of each size is enough.
      if (body.length < 200_000) sizings.push(() => 1);
      for (const size of sizings) expect(await streamed(chunked(body, size), boundary)).toEqual(expected);
    },
  );

  it("finds a delimiter split at every offset between two chunks, and at every offset of three", async () => {
    const form = new FormData();
    form.append("image", new File([trickyBytes(300, 5, "x")], "a.png"));
    form.append("top_k", "3");
    form.append("image", new File([text("\r\n-\r\n--\r\n")], "b.png"));
    form.append("image", new File([new Uint8Array(0)], "c.png"));
    const { body, boundary } = await serialise(form);
    const expected = whole(body, boundary);
    for (let cut = 0; cut <= body.length; cut++) {
      expect(
        await streamed(
          chunked(body, (i) => (i === 0 ? cut : body.length)),
          boundary,
        ),
      ).toEqual(expected);
    }
    // A middle chunk of 1..80 bytes (a delimiter is 4 + the boundary's length) at every offset.
    for (let cut = 0; cut < body.length; cut += 3) {
      for (const middle of [1, 2, 5, 20, 45, 80]) {
        expect(
          await streamed(
            chunked(body, (i) => [cut, middle][i] ?? body.length),
            boundary,
          ),
        ).toEqual(expected);
      }
    }
  });

  it("a consumer that reads nothing of image 1, or stops part way, still gets image 2 whole", async () => {
    const second = trickyBytes(5000, 9, "b");
    const form = new FormData();
    form.append("image", new File([new Uint8Array(50_000).fill(7)], "1.png"));
    form.append("image", new File([second], "2.png"));
    const { body, boundary } = await serialise(form);
    for (const readOfFirst of [0, 1, 3]) {
      const got: Uint8Array[] = [];
      for await (const image of multipartImages(
        chunked(body, () => 999),
        boundary,
        { maxImages: 8, tooMany },
      )) {
        if (image.index === 0) {
          let pieces = 0;
          for await (const _ of image.bytes) if (++pieces >= readOfFirst) break;
          continue;
        }
        const pieces: Uint8Array[] = [];
        for await (const piece of image.bytes) pieces.push(piece);
        got.push(join(pieces));
      }
      expect(got).toEqual([second]);
    }
  });

  it("image bytes are handed on chunk by chunk, never gathered", async () => {
    const form = new FormData();
    form.append("image", new File([new Uint8Array(1_000_000).fill(1)], "big.png"));
    form.append("other", new File([new Uint8Array(1_000_000).fill(2)], "skipped.bin"));
    form.append("image", new File([new Uint8Array(1_000_000).fill(3)], "big2.png"));
    const { body, boundary } = await serialise(form);
    let largest = 0;
    let pieces = 0;
    for await (const image of multipartImages(
      chunked(body, () => 4096),
      boundary,
      { maxImages: 8, tooMany },
    )) {
      for await (const piece of image.bytes) {
        largest = Math.max(largest, piece.length);
        pieces++;
      }
    }
    expect(largest).toBeLessThanOrEqual(4096);
    expect(pieces).toBeGreaterThan(2 * 240);
  });

  it("every truncation of a body fails, or parses, as the whole-body parser does", async () => {
    const form = new FormData();
    form.append("top_k", "2");
    form.append("image", new File([trickyBytes(120, 3, "z")], "1.png"));
    form.append("image", new File([text("PNG")], "2.png"));
    const { body, boundary } = await serialise(form);
    const random = mulberry32(11);
    for (let length = 0; length <= body.length; length++) {
      const cut = body.subarray(0, length);
      const expected = whole(cut, boundary);
      expect(
        await streamed(
          chunked(cut, () => 1 + Math.floor(random() * 40)),
          boundary,
        ),
        `cut at ${length}`,
      ).toEqual(expected);
    }
  });

  it.each([
    [
      "a boundary the body does not use",
      '--other\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--other--',
      "b",
      8,
    ],
    [
      "headers over 8 KiB",
      `--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\nX-Pad: ${"p".repeat(9000)}\r\n\r\nX\r\n--b--`,
      "b",
      8,
    ],
    ["headers that end at 8 KiB exactly", `--b\r\nX-Pad: ${"p".repeat(8192 - 11)}\r\n\r\nX\r\n--b--`, "b", 8],
    ["headers that end a byte past 8 KiB", `--b\r\nX-Pad: ${"p".repeat(8192 - 10)}\r\n\r\nX\r\n--b--`, "b", 8],
    ["an image sent as text", '--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nXYZ\r\n--b--', "b", 8],
    [
      "a part's Content-Length that lies",
      '--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\nContent-Length: 2\r\n\r\nXYZW\r\n--b--',
      "b",
      8,
    ],
    [
      "a boundary not followed by a line end",
      '--bX\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--b--',
      "b",
      8,
    ],
    ["padding after a boundary", '--b \t \r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--b  --', "b", 8],
    [
      "a preamble and an epilogue",
      'hello\r\n--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--b--\r\nbye',
      "b",
      8,
    ],
    ["one image too many", `${'--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n'.repeat(3)}--b--`, "b", 2],
    [
      "top_k over 64 bytes",
      `--b\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n7${" ".repeat(100)}9\r\n--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--b--`,
      "b",
      8,
    ],
    ["no part at all", "--b--", "b", 8],
    ["an empty body", "", "b", 8],
  ])("%s: as the whole-body parser", async (_, raw, boundary, maxImages) => {
    const body = text(raw);
    const expected = whole(body, boundary, maxImages);
    for (const size of [1, 7, 100_000])
      expect(
        await streamed(
          chunked(body, () => size),
          boundary,
          maxImages,
        ),
      ).toEqual(expected);
  });

  it("refuses a flood of 100,000 tiny fields after MAX_PARTS parts, having read little of it", async () => {
    const part = '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n';
    const body = text(`${part.repeat(100_000)}--b--`);
    const seen = { bytes: 0, returned: false };
    expect(
      await streamed(
        chunked(body, () => 4096, seen),
        "b",
      ),
    ).toEqual({ status: 400, code: "malformed_multipart" });
    // Refused with bounded work: no more than a chunk past the parts allowed was read, and the upload was let go.
    expect(seen.bytes).toBeLessThanOrEqual((MAX_PARTS + 1) * part.length + 4096);
    expect(seen.returned).toBe(true);
    // MAX_PARTS parts (the batch's images among them) are still a form.
    const atLimit = text(
      `${part.repeat(MAX_PARTS - 1)}--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nX\r\n--b--`,
    );
    expect(
      await streamed(
        chunked(atLimit, () => 100),
        "b",
      ),
    ).toEqual({ images: [text("X")], topK: undefined });
  });

  it("counts what it found: a form without an image is the caller's to refuse", async () => {
    const generator = multipartImages(
      chunked(text('--b\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n3\r\n--b--'), () => 5),
      "b",
      {
        maxImages: 8,
        tooMany,
      },
    );
    expect(await generator.next()).toEqual({ done: true, value: { images: 0, parts: 1 } });
  });

  it("stops reading the body at its closing boundary, or when the consumer stops", async () => {
    const { body, boundary } = await formOf(4, 2, true);
    const withEpilogue = join([body, new Uint8Array(100_000)]);
    const seen = { bytes: 0, returned: false };
    expect(
      await streamed(
        chunked(withEpilogue, () => 1000, seen),
        boundary,
      ),
    ).toEqual(whole(body, boundary));
    expect(seen.returned).toBe(true);
    expect(seen.bytes).toBeLessThan(body.length + 1000);

    const early = { bytes: 0, returned: false };
    for await (const _ of multipartImages(
      chunked(body, () => 1000, early),
      boundary,
      { maxImages: 8, tooMany },
    ))
      break;
    expect(early.returned).toBe(true);
    expect(early.bytes).toBeLessThan(body.length);
  });

  it("an image's bytes are read once, and not after the parser has moved on", async () => {
    const { body, boundary } = await formOf(4, 3, false);
    const generator = multipartImages(
      chunked(body, () => 50),
      boundary,
      { maxImages: 8, tooMany },
    );
    const first = (await generator.next()).value as { bytes: AsyncIterable<Uint8Array> };
    await generator.next();
    await expect(async () => {
      for await (const _ of first.bytes);
    }).rejects.toThrow("after the next part");
    const second = (await generator.next()).value as { bytes: AsyncIterable<Uint8Array> };
    for await (const _ of second.bytes);
    await expect(async () => {
      for await (const _ of second.bytes);
    }).rejects.toThrow("only once");
    await generator.return(undefined as never);
  });
});
