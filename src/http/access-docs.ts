/**
 * How access control shows in /openapi.json: the bearer security scheme, and the 401 and 429 answers of
 * the routes that the api-key and rate-limit middleware guard (src/http/middleware/). Route files spread
 * these into their `createRoute` definitions, so the document names what the middleware enforces.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { errorSchema } from "./schemas";

export const API_KEY_SCHEME = "apiKey";

/** `security` of a route that needs a key when the deployment sets API_KEYS. */
export const keyedRoute = { security: [{ [API_KEY_SCHEME]: [] }] };

const errorContent = { "application/json": { schema: errorSchema } };

export const unauthorizedResponse = {
  401: {
    description: "No API key, or not a valid one (only when the deployment sets API_KEYS). Carries `WWW-Authenticate: Bearer`.",
    content: errorContent,
  },
};

export const rateLimitedResponse = {
  429: {
    description: "`rate_limited`: this client (its API key, else its address) sent too many requests; see Retry-After.",
    headers: { "Retry-After": { schema: { type: "string" as const }, description: "Seconds to wait." } },
    content: errorContent,
  },
};

export function registerApiKeyScheme(app: Pick<OpenAPIHono, "openAPIRegistry">): void {
  app.openAPIRegistry.registerComponent("securitySchemes", API_KEY_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "An API key from the deployment's API_KEYS secret, sent as `Authorization: Bearer <key>`. A deployment " +
      "without API_KEYS (e.g. local `npm start` without .dev.vars) ignores it.",
  });
}
