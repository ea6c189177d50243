/** Liveness (never touches the model) and readiness (the model is loaded, or loads now). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { memoryReport } from "../memory-report";
import type { AppEnv } from "../env";
import { errorSchema, readySchema, statusSchema } from "../schemas";

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  summary: "Liveness: the Worker answers. Does not touch the model.",
  responses: { 200: { description: "Alive.", content: { "application/json": { schema: statusSchema } } } },
});

const readyRoute = createRoute({
  method: "get",
  path: "/readyz",
  summary: "Readiness: the model is loaded, or was loaded by this request.",
  responses: {
    200: {
      description: "Ready to classify; `memory` gives the isolate's wasm memory and ledger figures.",
      content: { "application/json": { schema: readySchema } },
    },
    503: { description: "The model cannot be served; see the error code.", content: { "application/json": { schema: errorSchema } } },
  },
});

export function registerHealth(app: OpenAPIHono<AppEnv>): void {
  app.openapi(healthRoute, (c) => c.json({ status: "ok" }, 200));
  app.openapi(readyRoute, async (c) => {
    const lease = await c.var.model.acquire();
    const model = lease.classifier.manifest.id;
    const memory = memoryReport(lease.classifier, c.var.budget);
    lease.release();
    return c.json({ status: "ready", model, memory }, 200);
  });
}
