/**
 * The model package manifest (docs/model-package.md): one schema, used both to validate what R2 holds
 * and to type it. Everything the Worker knows about a model comes from here.
 */
import { z } from "zod";

export const MANIFEST_FORMAT = "alexnet-edge.model/1";

const positiveInt = z.number().int().positive();
const activation = z.enum(["relu", "none"]);

const conv2d = z.object({
  op: z.literal("conv2d"),
  name: z.string().min(1),
  filters: positiveInt,
  kernel: positiveInt,
  stride: positiveInt,
  padding: z.number().int().nonnegative(),
  groups: positiveInt.default(1),
  activation: activation.default("none"),
});
const lrn = z.object({
  op: z.literal("lrn"),
  size: positiveInt.refine((n) => n % 2 === 1, "lrn size must be odd"),
  alpha: z.number().nonnegative(),
  beta: z.number().nonnegative(),
  k: z.number(),
});
const maxpool = z.object({ op: z.literal("maxpool"), window: positiveInt, stride: positiveInt });
const flatten = z.object({ op: z.literal("flatten") });
const dense = z.object({
  op: z.literal("dense"),
  name: z.string().min(1),
  units: positiveInt,
  activation: activation.default("none"),
});
const softmax = z.object({ op: z.literal("softmax") });

export const layerSchema = z.discriminatedUnion("op", [conv2d, lrn, maxpool, flatten, dense, softmax]);

const rgb = z.tuple([z.number(), z.number(), z.number()]);

export const preprocessSchema = z.object({
  color: z.enum(["rgb", "gray"]),
  background: rgb.default([0, 0, 0]),
  resize: z.object({ shorter_side: positiveInt, filter: z.literal("bilinear") }),
  crop: z.object({ mode: z.literal("center"), height: positiveInt, width: positiveInt }),
  scale: z.number().positive(),
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive()).min(1),
});

// The calibration block (docs/model-package.md, "calibration"): optional; a package without it answers
// `unknown: false`, `ood_score: null`. `ood.method` "energy+input" is the one the exporter writes
// (training/calibration.py): max((energy - e.median) / e.scale, (input z-score - i.median) / i.scale).
const spread = { median: z.number(), scale: z.number().positive() };
export const calibrationSchema = z
  .object({
    temperature: z.number().positive(),
    ood: z
      .object({
        method: z.literal("energy+input"),
        threshold: z.number(),
        tpr: z.number().min(0).max(1).optional(),
        energy: z.object({ temperature: z.number().positive(), ...spread }),
        input: z.object({
          grid: positiveInt,
          eps: z.number().nonnegative(),
          mean: z.array(z.number()),
          std: z.array(z.number().nonnegative()),
          ...spread,
        }),
      })
      .superRefine((o, ctx) => {
        const cells = o.input.grid * o.input.grid;
        if (o.input.mean.length !== cells || o.input.std.length !== cells) {
          ctx.addIssue({ code: "custom", message: `calibration.ood.input mean and std need grid * grid = ${cells} values` });
        }
      }),
    fitted_on: z.string().optional(),
    metrics: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();
export type Calibration = z.infer<typeof calibrationSchema>;

const fileRef = z.object({
  file: z.string().regex(/^[A-Za-z0-9._-]+$/),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, "id must be lower-case letters, digits, '.', '_' or '-'"),
    input: z.object({ height: positiveInt, width: positiveInt, channels: positiveInt }),
    preprocess: preprocessSchema,
    layers: z.array(layerSchema).min(1),
    labels: z.array(z.string()).min(1),
    weights: fileRef,
    samples: z
      .object({
        file: z.string().regex(/^[A-Za-z0-9._-]+$/),
        count: z.number().int().nonnegative(),
        tolerance: z.object({ abs: z.number().nonnegative(), rel: z.number().nonnegative() }),
      })
      .optional(),
    quantization: z
      .object({
        weights: z.literal("int8-symmetric-per-output-channel"),
        // Where the convolutions run: "int8" on our kernels (what the exporter writes), or "fp32" on
        // tfjs-wasm for a model whose int8 error is too large. Packages written before int8 convolutions
        // existed lack the field, and their sample logits were computed in fp32: absent means "fp32".
        convolutions: z.enum(["int8", "fp32"]).default("fp32"),
        // How the int8 convolutions code a signed input (src/engine/input-code.ts): over its min..max (what
        // the exporter writes now), or symmetric around zero point 64 (every int8 package written before;
        // their sample logits were computed that way, hence the default).
        conv_activations: z.enum(["7-bit-per-tensor-min-max", "7-bit-per-tensor-dynamic"]).default("7-bit-per-tensor-dynamic"),
      })
      .passthrough(),
    // Informational, shown at GET /v1/models; per_class_recall (one value per label, in label order) is the
    // only field with a shape, so a package cannot carry a list that belongs to other labels.
    metrics: z
      .object({ per_class_recall: z.array(z.number().min(0).max(1)).optional() })
      .catchall(z.unknown())
      .default({}),
    training: z.record(z.string(), z.unknown()).default({}),
    calibration: calibrationSchema.optional(),
    // The report card (docs/model-package.md, "report"): evaluation figures for the demo's Model view, and a
    // sprite of test images per confusion cell. Optional: GET /v1/models answers `report: null` without it.
    report: fileRef.extend({ thumbnails: fileRef.optional() }).optional(),
  })
  .superRefine((m, ctx) => {
    const { channels } = m.input;
    if (m.preprocess.mean.length !== channels || m.preprocess.std.length !== channels) {
      ctx.addIssue({ code: "custom", message: `preprocess mean and std need ${channels} values (input.channels)` });
    }
    if (m.preprocess.crop.height !== m.input.height || m.preprocess.crop.width !== m.input.width) {
      ctx.addIssue({ code: "custom", message: "preprocess.crop must equal the input height and width" });
    }
    const recall = m.metrics.per_class_recall;
    if (recall && recall.length !== m.labels.length) {
      ctx.addIssue({ code: "custom", message: `metrics.per_class_recall needs one value per label (${m.labels.length})` });
    }
    if (m.calibration && m.calibration.ood.input.grid > Math.min(m.input.height, m.input.width)) {
      ctx.addIssue({ code: "custom", message: "calibration.ood.input.grid cannot exceed the input's height or width" });
    }
    const lastDense = m.layers.filter((l) => l.op === "dense").at(-1);
    if (!lastDense || lastDense.units !== m.labels.length) {
      ctx.addIssue({ code: "custom", message: "the last dense layer needs one unit per label" });
    }
  });

export type Manifest = z.infer<typeof manifestSchema>;
export type Layer = z.infer<typeof layerSchema>;
export type Preprocess = z.infer<typeof preprocessSchema>;
export type InputShape = Manifest["input"];

/** Validates parsed JSON as a manifest; the error lists every problem found. */
export function parseManifest(json: unknown): Manifest {
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "manifest"}: ${i.message}`);
    throw new ManifestError(`invalid model manifest: ${problems.join("; ")}`);
  }
  return result.data;
}

export class ManifestError extends Error {
  override name = "ManifestError";
}
