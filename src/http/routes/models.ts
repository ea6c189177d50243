/** GET /v1/models: what the served model is, from its manifest. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { keyedRoute, unauthorizedResponse } from "../access-docs";
import type { AppEnv } from "../env";
import { errorSchema, modelInfoSchema, type ModelInfo } from "../schemas";

export const modelsRoute = createRoute({
  method: "get",
  path: "/v1/models",
  summary: "The served model: id, input size, labels, measured accuracy, training record",
  ...keyedRoute,
  responses: {
    200: { description: "The served model.", content: { "application/json": { schema: modelInfoSchema } } },
    ...unauthorizedResponse,
    503: { description: "The model cannot be served right now.", content: { "application/json": { schema: errorSchema } } },
  },
});

export function registerModels(app: OpenAPIHono<AppEnv>): void {
  app.openapi(modelsRoute, async (c) => {
    const lease = await c.var.model.acquire();
    const { manifest } = lease.classifier;
    lease.release();
    const body: ModelInfo = {
      id: manifest.id,
      input: manifest.input,
      labels: manifest.labels,
      metrics: manifest.metrics,
      training: manifest.training,
      quantization: manifest.quantization,
    };
    return c.json(body, 200);
  });
}
