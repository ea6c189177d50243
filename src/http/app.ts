/**
 * The Hono application: middleware, routes and the one error handler. Knows nothing of tensors: it
 * passes image bytes to the image pipeline and preprocessed inputs to the served model.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { requestId } from "hono/request-id";
import { MEMORY_BUDGET_BYTES, MEMORY_QUEUE_MAX, MEMORY_WAIT_MS, POINTER_CHECK_INTERVAL_MS, RETRY_AFTER_SECONDS } from "../config";
import { createMemoryBudget, type MemoryBudget } from "../memory/budget";
import { createModelHolder, type ModelHolder } from "../model/served-model";
import { errorResponse, notFound, onError } from "./errors";
import { registerClassify } from "./routes/classify";
import { registerDemo } from "./routes/demo";
import { registerHealth } from "./routes/health";
import { registerModels } from "./routes/models";

/** The Worker's bindings, generated from wrangler.toml by `npm run cf-typegen`: MODELS (R2), POINTER_CHECK_SECONDS. */
export type Bindings = Env;

export interface ServedModel {
  acquire(): ReturnType<ModelHolder["acquire"]>;
}

export type AppEnv = { Bindings: Bindings; Variables: { model: ServedModel; budget: MemoryBudget } };

export function createApp(options: { models?: ModelHolder; budget?: MemoryBudget } = {}): OpenAPIHono<AppEnv> {
  // Module state lives as long as the isolate: one memory ledger and one model per isolate, shared by every request.
  const budget =
    options.budget ??
    createMemoryBudget({ capacityBytes: MEMORY_BUDGET_BYTES, maxQueue: MEMORY_QUEUE_MAX, maxWaitMs: MEMORY_WAIT_MS, retryAfterSeconds: RETRY_AFTER_SECONDS });
  const models = options.models ?? createModelHolder();
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return errorResponse(c, 400, "bad_request", result.error.issues.map((i) => i.message).join("; "));
    },
  });

  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(async (c, next) => {
    const seconds = Number(c.env.POINTER_CHECK_SECONDS);
    const interval = Number.isFinite(seconds) && c.env.POINTER_CHECK_SECONDS !== undefined ? seconds * 1000 : POINTER_CHECK_INTERVAL_MS;
    c.set("model", { acquire: () => models.acquire(c.env.MODELS, interval) });
    c.set("budget", budget);
    await next();
  });
  // Body limits are per input form and enforced as the body is read (src/http/read-images.ts).

  registerHealth(app);
  registerModels(app);
  registerClassify(app);
  registerDemo(app);
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "alexnet-edge", version: "1", description: "AlexNet image classification on Cloudflare Workers." },
  });

  app.onError(onError);
  app.notFound(notFound);
  return app;
}
