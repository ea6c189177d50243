import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { samples } from "../../src/http/demo/samples";

describe("the demo page", () => {
  it("is served at / as HTML that calls the public API", async () => {
    const response = await SELF.fetch("https://edge.test/");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain("<title>alexnet-edge demo</title>");
    expect(html).toContain("/v1/classify");
    expect(html).toContain("/v1/models");
  });

  it("lists its sample images and serves each with its type", async () => {
    const list = await (await SELF.fetch("https://edge.test/samples/index.json")).json<{ name: string; type: string }[]>();
    expect(list.map((s) => s.name)).toEqual(samples.map((s) => s.name));
    for (const sample of list) {
      const response = await SELF.fetch(`https://edge.test/samples/${encodeURIComponent(sample.name)}`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(sample.type);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
  });

  it("answers 404 in the API's error shape for an unknown sample", async () => {
    const response = await SELF.fetch("https://edge.test/samples/nope.png");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "not_found" } });
  });
});
