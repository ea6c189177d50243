/**
 * GET /v1/models: what the served model is, from its manifest, with its calibration and its report card
 * (report.json from R2, for the demo's Model view); GET /v1/models/{id}/thumbnails.png: the report's sprite.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { openThumbnails, readReport, ReportError } from "../../model/report";
import { describeError } from "../../describe-error";
import { keyedRoute, unauthorizedResponse } from "../access-docs";
import type { AppEnv } from "../env";
import { notFound } from "../errors";
import { errorSchema, modelInfoSchema, type ModelInfo, type ModelReport } from "../schemas";

const unavailable = {
  503: { description: "The model cannot be served right now.", content: { "application/json": { schema: errorSchema } } },
};

export const modelsRoute = createRoute({
  method: "get",
  path: "/v1/models",
  summary: "The served model: id, input size, labels, measured accuracy, training record, calibration, report card",
  ...keyedRoute,
  responses: {
    200: { description: "The served model.", content: { "application/json": { schema: modelInfoSchema } } },
    ...unauthorizedResponse,
    ...unavailable,
  },
});

export const thumbnailsRoute = createRoute({
  method: "get",
  path: "/v1/models/{id}/thumbnails.png",
  summary: "The served model's thumbnail sprite: a few test images per confusion cell (its report's `thumbnails` says where)",
  ...keyedRoute,
  request: { params: z.object({ id: z.string().openapi({ example: "alexnet-fmnist-64-v8" }) }) },
  responses: {
    200: { description: "The sprite.", content: { "image/png": { schema: z.string().openapi({ format: "binary" }) } } },
    ...unauthorizedResponse,
    404: { description: "Not the served model, or it has no thumbnails.", content: { "application/json": { schema: errorSchema } } },
    ...unavailable,
  },
});

/** Packages are immutable by id: a sprite never changes under its URL. */
const THUMBNAILS_CACHE = "public, max-age=86400, immutable";

export function registerModels(app: OpenAPIHono<AppEnv>): void {
  app.openapi(modelsRoute, async (c) => {
    const lease = await c.var.model.acquire();
    const { manifest } = lease.classifier;
    lease.release();
    let held: Awaited<ReturnType<typeof readReport>>;
    try {
      held = await readReport(c.env.MODELS, manifest, c.var.budget, { label: `report ${c.get("requestId") ?? ""}`.trim() });
    } catch (error) {
      if (!(error instanceof ReportError)) throw error;
      // The rest of the answer stands; the publisher learns why from the log.
      console.error({ event: "model_report_unusable", model: manifest.id, detail: describeError(error) });
    }
    try {
      const cal = manifest.calibration;
      const body: ModelInfo = {
        id: manifest.id,
        input: manifest.input,
        labels: manifest.labels,
        metrics: manifest.metrics,
        training: manifest.training,
        quantization: manifest.quantization,
        calibration: cal
          ? {
              temperature: cal.temperature,
              ood_threshold: cal.ood.threshold,
              tpr: cal.ood.tpr,
              fitted_on: cal.fitted_on,
              metrics: cal.metrics,
            }
          : null,
        report: held ? (held.report as ModelReport) : null,
        thumbnails_url: manifest.report?.thumbnails ? `/v1/models/${manifest.id}/thumbnails.png` : null,
      };
      return c.json(body, 200);
    } finally {
      held?.release();
    }
  });

  app.openapi(thumbnailsRoute, async (c) => {
    const lease = await c.var.model.acquire();
    const { manifest } = lease.classifier;
    lease.release();
    // Only the served model's: the URL is what GET /v1/models hands out, and nothing else in R2 is reachable.
    if (c.req.valid("param").id !== manifest.id) return notFound(c);
    let object: R2ObjectBody | undefined;
    try {
      object = await openThumbnails(c.env.MODELS, manifest);
    } catch (error) {
      if (!(error instanceof ReportError)) throw error;
      console.error({ event: "model_report_unusable", model: manifest.id, detail: describeError(error) });
    }
    if (!object) return notFound(c);
    return c.body(object.body, 200, {
      "Content-Type": "image/png",
      "Content-Length": String(object.size),
      "Cache-Control": THUMBNAILS_CACHE,
    });
  });
}
