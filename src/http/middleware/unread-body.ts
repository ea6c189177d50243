/**
 * What is left of a request body once the Worker has answered without reading all of it (a 401, 413, 415 or
 * 429 before the body; an image refused part way). It is read away chunk by chunk when it declared at most
 * MAX_DISCARDED_BODY_BYTES, so the client, which writes its whole body before it reads, gets the answer
 * instead of a reset connection; otherwise it is cancelled.
 *
 * Left alone, an unread body is read by someone else: `wrangler dev` wraps the Worker in a middleware that
 * reads every unread body into one ArrayBuffer in the isolate (it works around workerd closing such
 * connections), so a refused 95 MB upload cost the local isolate 20-30 MB for seconds (docs/memory.md).
 */
import type { MiddlewareHandler } from "hono";
import { MAX_DISCARDED_BODY_BYTES } from "../../config";
import { bodyTimeouts, discardRest } from "../body/read-body";
import type { AppEnv } from "../env";

export function settleUnreadBody(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    const request = c.req.raw;
    // `locked`, not `bodyUsed`: a body read part way and let go (an image refused after its header) is
    // "used" but still has its rest to read away or cancel; one read to its end stays locked by its reader.
    if (!request.body || request.body.locked) return;
    await discardRest(request, MAX_DISCARDED_BODY_BYTES, bodyTimeouts(c.env));
    if (!request.body.locked) await request.body.cancel().catch(() => {});
  };
}
