/**
 * The app's typed environment, apart from the app itself: route and middleware files import it from here, so
 * none of them imports app.ts, which imports them (no cycle, even of types).
 */
import type { MemoryBudget } from "../memory/budget";
import type { ModelHolder } from "../model/served-model";
import type { ApiKeyEnv } from "./middleware/api-key";
import type { RateLimitEnv } from "./middleware/rate-limit";
import type { RequestLogEnv } from "./middleware/request-log";

/**
 * The Worker's bindings, generated from wrangler.toml by `npm run cf-typegen` (MODELS, RATE_LIMITER,
 * POINTER_CHECK_SECONDS, CORS_ORIGINS), the API_KEYS secret, which may be unset, and the body timeouts, which
 * default to src/config.ts's (tests shorten them).
 */
export type Bindings = Env & { API_KEYS?: string; BODY_IDLE_TIMEOUT_SECONDS?: string; BODY_DEADLINE_SECONDS?: string };

export interface ServedModel {
  acquire(): ReturnType<ModelHolder["acquire"]>;
}

export type AppEnv = {
  Bindings: Bindings;
  Variables: { model: ServedModel; budget: MemoryBudget } & ApiKeyEnv["Variables"] & RateLimitEnv["Variables"] & RequestLogEnv["Variables"];
};
