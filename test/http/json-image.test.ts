import { describe, expect, it } from "vitest";
import { JsonImageParser } from "../../src/http/body/json-image";
import { ApiError } from "../../src/http/errors";

const text = (s: string) => new TextEncoder().encode(s);

/** Parses `body` fed in pieces of `piece` bytes, as a network would hand it over. */
function parse(body: string | Uint8Array, piece = 7, max = 1 << 20) {
  const bytes = typeof body === "string" ? text(body) : body;
  const parser = new JsonImageParser(max, 0);
  for (let at = 0; at < bytes.length; at += piece) parser.write(bytes.subarray(at, at + piece));
  return parser.end();
}

function failure(body: string, max?: number): string {
  try {
    parse(body, 7, max);
  } catch (error) {
    if (error instanceof ApiError) return `${error.status} ${error.code}`;
    throw error;
  }
  return "parsed";
}

describe("the JSON body parser reads the image straight into bytes", () => {
  const image = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 255);

  it("a byte array, however the body is split into chunks", () => {
    const body = JSON.stringify({ image: [...image], top_k: 3 });
    for (const piece of [1, 2, 3, 5, 64, body.length]) {
      const parsed = parse(body, piece);
      expect(parsed.image).toEqual(image);
      expect(parsed.topK).toBe(3);
    }
  });

  it("ood_threshold beside top_k, in any order, as a number or a string for the schema to read", () => {
    const parsed = parse('{"ood_threshold": -1.5e0, "image": [7], "top_k": 2}', 3);
    expect([[...parsed.image], parsed.topK, parsed.oodThreshold]).toEqual([[7], 2, -1.5]);
    expect(parse('{"image":[7],"ood_threshold":" 2.5 "}').oodThreshold).toBe(" 2.5 ");
    expect(parse('{"image":[7],"ood_threshold":true}').oodThreshold).toBe(true); // the schema refuses it (400)
    expect(parse('{"image":[7]}').oodThreshold).toBeUndefined();
  });

  it("a byte array with whitespace, 1.0-style integers and top_k first", () => {
    const parsed = parse('  {\n "top_k" : "2",\t"image" : [ 0 , 255,\n 1.0, 2e0, 10 ] }  ');
    expect([...parsed.image]).toEqual([0, 255, 1, 2, 10]);
    expect(parsed.topK).toBe("2"); // the schema coerces it, as for the query
  });

  it("base64, URL-safe base64, wrapped lines, escaped slashes and a data: URL", () => {
    const b64 = btoa(String.fromCharCode(...image));
    const variants = [
      b64,
      b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
      b64.replace(/(.{76})/g, "$1\n"),
      b64.replace(/\//g, "\\/"),
      `data:image/png;base64,${b64}`,
      `DATA:image/jpeg;name=x.jpg;BASE64,${b64}`,
    ];
    for (const v of variants) {
      const body = v.includes("\\/") ? `{"image":"${v}"}` : JSON.stringify({ image: v });
      expect(parse(body).image, v.slice(0, 30)).toEqual(image);
    }
  });

  it("an empty array or string gives no bytes (the route answers empty_image)", () => {
    expect(parse('{"image":[]}').image.length).toBe(0);
    expect(parse('{"image":""}').image.length).toBe(0);
  });

  it("holds only the image: the buffer it returns is the image's own size, not the body's", () => {
    const big = new Uint8Array(300_000).fill(7);
    const parsed = parse(JSON.stringify({ image: [...big] }), 65536, 4 << 20);
    expect(parsed.image.byteLength).toBe(300_000);
    expect(parsed.image.buffer.byteLength).toBeLessThanOrEqual(1.25 * 300_000 + 65536); // grown in place by a quarter at a time
  });
});

describe("a JSON body that is not exactly the schema gets a 400 with a clear code", () => {
  it.each([
    ['{"image":[1,2,256]}', "400 invalid_image_bytes"],
    ['{"image":[1,-1]}', "400 invalid_image_bytes"],
    ['{"image":[1.5]}', "400 invalid_image_bytes"],
    ['{"image":[1e400]}', "400 invalid_image_bytes"],
    [`{"image":[${"9".repeat(100_000)}]}`, "400 invalid_image_bytes"],
    ['{"image":[1,"2"]}', "400 invalid_image_bytes"],
    ['{"image":[[1]]}', "400 invalid_image_bytes"],
    [`{"image":${"[".repeat(100_000)}`, "400 invalid_image_bytes"],
    [`${"[".repeat(100_000)}`, "400 invalid_body"],
    ['{"image":[1,2],"model":"resnet"}', "400 invalid_body"],
    ['{"image":[1],"image":[2]}', "400 invalid_body"],
    ['{"picture":[1,2]}', "400 invalid_body"],
    ['{"top_k":3}', "400 invalid_body"],
    ['{"image":true}', "400 invalid_body"],
    ["[1,2,3]", "400 invalid_body"],
    ['{"image":[01]}', "400 invalid_json"],
    ['{"image":[1,]}', "400 invalid_json"],
    ['{"image":[1 2]}', "400 invalid_json"],
    ['{"image":[1,2]', "400 invalid_json"],
    ['{"image":[1,2]} x', "400 invalid_json"],
    ["{image:[1]}", "400 invalid_json"],
    ["", "400 invalid_json"],
    ['{"image":"not base64!!"}', "400 invalid_base64"],
    ['{"image":"QUJD\\u00e9"}', "400 invalid_base64"],
    ['{"image":"QUJDR"}', "400 invalid_base64"],
    ['{"image":"QU=JD"}', "400 invalid_base64"],
    ['{"image":"QUI==="}', "400 invalid_base64"],
    ['{"image":"data:image/png,%89PNG"}', "400 invalid_base64"],
    ['{"image":"data:image/png;base64"}', "400 invalid_base64"],
    ['{"image":[1],"top_k":[3]}', "400 invalid_top_k"],
    [`{"image":[1],"top_k":"${"9".repeat(100)}"}`, "400 invalid_top_k"],
    ['{"image":[1],"ood_threshold":{"value":1}}', "400 invalid_ood_threshold"],
    [`{"image":[1],"ood_threshold":${"1".repeat(100)}}`, "400 invalid_ood_threshold"],
    ['{"image":[1],"ood_threshold":"1\\n"}', "400 invalid_ood_threshold"],
    ['{"image":[1],"ood_threshold":1,"ood_threshold":2}', "400 invalid_body"],
    ['{"image":[1],"ood_threshold":1e}', "400 invalid_json"],
  ])("%s", (body, expected) => {
    expect(failure(body)).toBe(expected);
  });

  it("an image over its limit is refused with 413 as soon as it passes it", () => {
    expect(failure(JSON.stringify({ image: new Array(101).fill(1) }), 100)).toBe("413 image_too_large");
    expect(failure(JSON.stringify({ image: btoa("x".repeat(101)) }), 100)).toBe("413 image_too_large");
  });
});
