import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: { content: Record<string, unknown> } }>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
}

describe("GET /openapi.json", () => {
  it("describes every public route from the schemas that validate requests", async () => {
    const response = await SELF.fetch("https://edge.test/openapi.json");
    expect(response.status).toBe(200);
    const doc = await response.json<OpenApiDoc>();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(["/healthz", "/readyz", "/v1/classify", "/v1/models", "/v1/models/{id}/thumbnails.png"]);
    const classify = doc.paths["/v1/classify"]!.post!;
    expect(Object.keys(classify.requestBody!.content).sort()).toEqual(["application/json", "image/*", "multipart/form-data"]);
    expect(Object.keys(classify.responses).sort()).toEqual(["200", "400", "401", "413", "415", "422", "429", "503"]);
    expect(Object.keys(doc.components.schemas.Prediction!.properties!)).toEqual(["label", "score"]);
    expect(Object.keys(doc.components.schemas.Error!.properties!)).toEqual(["error"]);
  });
});
