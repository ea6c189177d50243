/**
 * GET /: the demo page (plain HTML, CSS and JS; it calls the public API only), and the sample images it
 * offers at GET /samples/<name>. Not part of the OpenAPI document: it is a page, not API.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../env";
import page from "../demo/index.html";
import { samples } from "../demo/samples";
import { notFound } from "../errors";

/** The page and samples change only with a deploy: let browsers reuse them for a few minutes. */
const CACHE_CONTROL = "public, max-age=300";

const byName = new Map(samples.map((s) => [s.name, s]));

function decodeBase64(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

export function registerDemo(app: OpenAPIHono<AppEnv>): void {
  app.get("/", (c) => c.html(page, 200, { "Cache-Control": CACHE_CONTROL }));
  app.get("/samples/index.json", (c) => c.json(samples.map(({ name, title, type }) => ({ name, title, type }))));
  app.get("/samples/:name", (c) => {
    const sample = byName.get(c.req.param("name"));
    if (!sample) return notFound(c);
    return c.body(decodeBase64(sample.base64), 200, { "Content-Type": sample.type, "Cache-Control": CACHE_CONTROL });
  });
}
