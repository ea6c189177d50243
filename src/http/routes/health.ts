/** Liveness (never touches the model) and readiness (the model is loaded, or loads now). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { memoryReport } from "../memory-report";
import { parseApiKeys } from "../middleware/api-key";
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
      description:
        "Ready to classify; `memory` gives the isolate's wasm memory and ledger figures, shown when no API keys are set or the request carries a valid key.",
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
    // The ledger's figures tell an attacker how close the isolate is to refusing work: with API keys set they
    // go only to a request with a valid key (the key check is optional on this route, src/http/app.ts).
    const operator = parseApiKeys(c.env.API_KEYS).length === 0 || c.var.clientKey !== undefined;
    const memory = operator ? memoryReport(lease.classifier, c.var.budget) : undefined;
    lease.release();
    return c.json({ status: "ready", model, ...(memory && { memory }) }, 200);
  });
}
