import { describe, expect, it } from "vitest";
import { multipartBoundary, parseMultipart } from "../../src/http/body/multipart";
import { ApiError } from "../../src/http/errors";

/** A multipart body as the runtime's own FormData serialises it. */
async function serialise(form: FormData): Promise<{ body: Uint8Array; boundary: string }> {
  const request = new Request("https://x/", { method: "POST", body: form });
  return { body: new Uint8Array(await request.arrayBuffer()), boundary: multipartBoundary(request.headers.get("content-type")!) };
}

const tooMany = (n: number) => new Error(`too many: ${n}`);

describe("multipart bodies are split without copying their files", () => {
  it("each image is a view of the one body buffer, byte for byte what was sent, in order", async () => {
    const files = [Uint8Array.of(1, 2, 3, 13, 10, 45, 45), new Uint8Array(70_000).fill(9), Uint8Array.of(255)];
    const form = new FormData();
    for (const [i, f] of files.entries()) form.append("image", new File([f], `${i}.png`, { type: "image/png" }));
    form.append("top_k", "4");
    form.append("comment", "ignored");
    const { body, boundary } = await serialise(form);
    const parsed = parseMultipart(body, boundary, 8, tooMany);
    expect(parsed.images).toEqual(files);
    expect(parsed.images.every((image) => image.buffer === body.buffer)).toBe(true);
    expect(parsed.topK).toBe("4");
  });

  it("a quoted boundary and a preamble are accepted", () => {
    const raw = 'preamble\r\n--a b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nXYZ\r\n--a b--\r\n';
    const boundary = multipartBoundary('multipart/form-data; boundary="a b"');
    expect(parseMultipart(new TextEncoder().encode(raw), boundary, 8, tooMany).images).toEqual([new TextEncoder().encode("XYZ")]);
  });

  it.each([
    ["no boundary in the body", "hello", "malformed_multipart"],
    ["a part cut off", '--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\nXYZ', "malformed_multipart"],
    ["headers that never end", '--b\r\nContent-Disposition: form-data; name="image"', "malformed_multipart"],
    ["an image sent as text", '--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nXYZ\r\n--b--', "missing_image"],
  ])("%s is a 400", (_, raw, code) => {
    try {
      parseMultipart(new TextEncoder().encode(raw), "b", 8, tooMany);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      expect([(error as ApiError).status, (error as ApiError).code]).toEqual([400, code]);
    }
  });

  it("stops at the first image past the batch limit", async () => {
    const form = new FormData();
    for (let i = 0; i < 4; i++) form.append("image", new File([Uint8Array.of(i)], "x.png"));
    const { body, boundary } = await serialise(form);
    expect(() => parseMultipart(body, boundary, 3, tooMany)).toThrow("too many: 4");
  });
});
