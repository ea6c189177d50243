/**
 * The Hono application: middleware, routes and the one error handler. Knows nothing of tensors: it
 * passes image bytes to the image pipeline and preprocessed inputs to the served model.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requestId } from "hono/request-id";
import {
  CORS_MAX_AGE_SECONDS,
  MEMORY_BUDGET_BYTES,
  MEMORY_QUEUE_MAX,
  MEMORY_WAIT_MS,
  POINTER_CHECK_INTERVAL_MS,
  RATE_LIMIT_PERIOD_SECONDS,
  RETRY_AFTER_SECONDS,
} from "../config";
import { createMemoryBudget, type MemoryBudget } from "../memory/budget";
import type { AppEnv } from "./env";
import { createModelHolder, type ModelHolder } from "../model/served-model";
import { registerApiKeyScheme } from "./access-docs";
import { errorResponse, notFound, onError } from "./errors";
import { apiKey } from "./middleware/api-key";
import { corsFromEnv } from "./middleware/cors";
import { rateLimit } from "./middleware/rate-limit";
import { noteModel, requestLog } from "./middleware/request-log";
import { settleUnreadBody } from "./middleware/unread-body";
import { registerClassify } from "./routes/classify";
import { registerDemo } from "./routes/demo";
import { registerHealth } from "./routes/health";
import { registerModels } from "./routes/models";

/** Routes that need an API key when API_KEYS is set; the rest (/, /healthz, /readyz, /openapi.json) stay open. */
const KEYED_ROUTES = ["/v1/classify", "/v1/models", "/v1/models/*"];
/** Routes that cost real CPU per request (a forward pass per image): these are rate limited. */
const LIMITED_ROUTES = ["/v1/classify"];
/** Answer headers a cross-origin page may read. */
const EXPOSED_HEADERS = ["Server-Timing", "X-Request-Id", "Retry-After", "WWW-Authenticate"];

export function createApp(options: { models?: ModelHolder; budget?: MemoryBudget } = {}): OpenAPIHono<AppEnv> {
  // Module state lives as long as the isolate: one memory ledger and one model per isolate, shared by every request.
  const budget =
    options.budget ??
    createMemoryBudget({
      capacityBytes: MEMORY_BUDGET_BYTES,
      maxQueue: MEMORY_QUEUE_MAX,
      maxWaitMs: MEMORY_WAIT_MS,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    });
  const models = options.models ?? createModelHolder({ budget });
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return errorResponse(c, 400, "bad_request", result.error.issues.map((i) => i.message).join("; "));
    },
  });

  app.use(requestId({ headerName: "X-Request-Id" }));
  app.use(requestLog());
  app.use(settleUnreadBody());
  // Before the key check: preflights carry no Authorization, and a 401 must carry CORS headers to be readable.
  app.use(corsFromEnv({ maxAgeSeconds: CORS_MAX_AGE_SECONDS, exposeHeaders: EXPOSED_HEADERS }));
  app.use(async (c, next) => {
    const seconds = Number(c.env.POINTER_CHECK_SECONDS);
    const interval = Number.isFinite(seconds) && c.env.POINTER_CHECK_SECONDS !== undefined ? seconds * 1000 : POINTER_CHECK_INTERVAL_MS;
    c.set("model", {
      acquire: async () => {
        const lease = await models.acquire(c.env.MODELS, interval, { waitUntil: waitUntilOf(c) });
        noteModel(c, lease.classifier.manifest.id);
        return lease;
      },
    });
    c.set("budget", budget);
    await next();
  });
  for (const path of KEYED_ROUTES) app.use(path, apiKey({ realm: "alexnet-edge" }));
  app.use("/readyz", apiKey({ realm: "alexnet-edge", optional: true }));
  // After the key check: a verified key is counted as itself, not as the address it comes from.
  for (const path of LIMITED_ROUTES) app.use(path, rateLimit({ retryAfterSeconds: RATE_LIMIT_PERIOD_SECONDS }));
  // Body limits are per input form and enforced as the body is read (src/http/read-images.ts).

  registerHealth(app);
  registerModels(app);
  registerClassify(app);
  registerDemo(app);
  registerApiKeyScheme(app);
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "alexnet-edge", version: "1", description: "AlexNet image classification on Cloudflare Workers." },
  });

  app.onError(onError);
  app.notFound(notFound);
  return app;
}

/**
 * The request's ExecutionContext.waitUntil, where the runtime gives one: the model's pointer check runs in it,
 * after the response, instead of before it. Hono throws when there is none (app.request in tests).
 */
function waitUntilOf(c: Context<AppEnv>): ((work: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (work) => ctx.waitUntil(work);
  } catch {
    return undefined;
  }
}
