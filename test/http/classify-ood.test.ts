/**
 * POST /v1/classify's verdict on each image (issue #18): `unknown` and `ood_score` beside the labels, from the
 * served package's calibration, through the Worker with the shipped default model in the local R2. What the
 * answer says is checked against src/engine/calibration.ts run here on the same picture: the pipeline's own
 * input tensor (prepareImage gives the same floats as the route's streaming decode) and the network's logits.
 */
import { env, SELF } from "cloudflare:test";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { calibratedProbabilities, oodScore } from "../../src/engine/calibration";
import { type Classifier, loadClassifier } from "../../src/engine/classifier";
import { createApp } from "../../src/http/app";
import { samples } from "../../src/http/demo/samples";
import { createModelHolder } from "../../src/model/served-model";
import { prepareImage } from "../../src/image";
import { parseManifest } from "../../src/package/manifest";
import defaultManifest from "../../model/alexnet-fmnist-64-v8/manifest.json";
import defaultWeights from "../../model/alexnet-fmnist-64-v8/weights.safetensors";
import tinyManifest from "../fixtures/tiny-package/manifest.json";
import tinyWeights from "../fixtures/tiny-package/weights.safetensors";
import { jpegStreamFiles } from "../fixtures/images/jpeg-stream";
import { encodePng, testPicture } from "../support/png";
import { mulberry32, publishToBucket, streamOf } from "../support/tiny-package";

const URL_CLASSIFY = "https://edge.test/v1/classify";
const manifest = parseManifest(defaultManifest);
const calibration = manifest.calibration!;
const LABELS = manifest.labels.length;

interface Result {
  predictions: { label: string; score: number }[];
  unknown: boolean;
  ood_score: number | null;
}
type Answer = Result & { model: string };

const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const solid = (value: number) => encodePng(64, 64, new Uint8Array(64 * 64 * 3).fill(value));
function noise(seed: number): Uint8Array {
  const random = mulberry32(seed);
  return encodePng(
    64,
    64,
    Uint8Array.from({ length: 64 * 64 * 3 }, () => Math.floor(random() * 256)),
  );
}

/** Fashion-MNIST test images (the demo's samples), and pictures unlike them: a photograph, flat grey, noise. */
const KNOWN = samples.map((s) => ({ name: s.name, bytes: fromBase64(s.base64) }));
const UNLIKE = [
  { name: "photograph (coffee.jpg)", bytes: fromBase64(jpegStreamFiles["stream-photo.jpg"]!) },
  { name: "flat grey", bytes: solid(128) },
  { name: "noise", bytes: noise(7) },
];
const KNOWN_IMAGE = KNOWN[0]!.bytes;
const PHOTO = UNLIKE[0]!.bytes;

type Fetch = (url: string, init: RequestInit) => Promise<Response>;
/** The test Worker, whose model holder lives as long as its isolate. */
const worker: Fetch = (url, init) => SELF.fetch(url, init);

function post(bytes: Uint8Array, query = "", send = worker): Promise<Response> {
  const type = bytes[0] === 0xff ? "image/jpeg" : "image/png";
  return send(URL_CLASSIFY + query, { method: "POST", headers: { "content-type": type }, body: bytes });
}

async function answer(bytes: Uint8Array, query = "", send = worker): Promise<Answer> {
  const response = await post(bytes, query, send);
  expect(response.status).toBe(200);
  return response.json<Answer>();
}

function postJson(body: unknown, query = ""): Promise<Response> {
  return SELF.fetch(URL_CLASSIFY + query, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function postForm(images: Uint8Array[], fields: Record<string, string> = {}, query = "", send = worker): Promise<Response> {
  const form = new FormData();
  for (const [i, bytes] of images.entries()) form.append("image", new File([bytes], `${i}`, { type: "application/octet-stream" }));
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return send(URL_CLASSIFY + query, { method: "POST", body: form });
}

const base64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));

describe("every answer of the calibrated default model says whether the image looks like its training data", () => {
  // The same network, run here without its softmax: the logits the answer's numbers must come from.
  let reference: Classifier;
  beforeAll(async () => {
    reference = await loadClassifier(
      { ...manifest, layers: manifest.layers.filter((l) => l.op !== "softmax") },
      streamOf(new Uint8Array(defaultWeights), 65536),
    );
  });
  afterAll(() => reference.dispose());
  beforeEach(async () => {
    await publishToBucket(env.MODELS, { manifest, weights: new Uint8Array(defaultWeights) });
  });

  /** What calibration.ts says of the picture: its logits' calibrated probabilities and its ood_score. */
  async function expected(bytes: Uint8Array) {
    const { tensor } = await prepareImage(bytes, manifest.preprocess, manifest.input);
    const [logits] = reference.forward([tensor]);
    return {
      probabilities: calibratedProbabilities(logits!, calibration.temperature),
      oodScore: oodScore(calibration, logits!, tensor, manifest.input),
    };
  }

  it("answers Fashion-MNIST pictures known and others unknown, with the score calibration.ts computes", async () => {
    const verdicts: Record<string, boolean> = {};
    for (const { name, bytes } of [...KNOWN, ...UNLIKE]) {
      const body = await answer(bytes, `?top_k=${LABELS}`);
      expect(Object.keys(body)).toEqual(["model", "predictions", "unknown", "ood_score"]);
      expect(body.model).toBe(manifest.id);
      const want = await expected(bytes);
      expect(body.ood_score, name).toBeCloseTo(want.oodScore, 9);
      expect(body.unknown, name).toBe(want.oodScore > calibration.ood.threshold);
      // Calibrated probabilities over every label: softmax(logits / T), summing to 1, sorted.
      expect(body.predictions).toHaveLength(LABELS);
      for (const p of body.predictions)
        expect(p.score, `${name} ${p.label}`).toBeCloseTo(want.probabilities[manifest.labels.indexOf(p.label)]!, 9);
      expect(body.predictions.reduce((a, p) => a + p.score, 0)).toBeCloseTo(1, 6);
      const scores = body.predictions.map((p) => p.score);
      expect(scores).toEqual([...scores].sort((a, b) => b - a));
      verdicts[name] = body.unknown;
    }
    expect(verdicts).toEqual(Object.fromEntries([...KNOWN.map((k) => [k.name, false]), ...UNLIKE.map((u) => [u.name, true])]));
  });

  it("answers the same verdict for the JSON forms as for raw bytes", async () => {
    const raw = await answer(PHOTO);
    for (const image of [base64(PHOTO), [...PHOTO]]) {
      const response = await postJson({ image });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(raw);
    }
  });

  it("lets the request's ood_threshold flip the verdict both ways, from the query, a JSON member or a form field", async () => {
    const known = await answer(KNOWN_IMAGE);
    const photo = await answer(PHOTO);
    expect([known.unknown, photo.unknown]).toEqual([false, true]);
    const below = known.ood_score! - 0.01; // just under the known image's score: unknown
    const above = photo.ood_score! + 0.01; // just over the photograph's: known

    const viaQuery = await answer(KNOWN_IMAGE, `?ood_threshold=${below}`);
    expect(viaQuery).toEqual({ ...known, unknown: true }); // the score and labels do not move
    expect((await answer(PHOTO, `?ood_threshold=${above}`)).unknown).toBe(false);

    const viaJson = await postJson({ image: base64(PHOTO), ood_threshold: above });
    expect(await viaJson.json()).toEqual({ ...photo, unknown: false });
    // The body's value wins over the query's, as for top_k.
    const both = await postJson({ image: base64(KNOWN_IMAGE), ood_threshold: String(below) }, `?ood_threshold=${above}`);
    expect((await both.json<Answer>()).unknown).toBe(true);

    const viaForm = await postForm([KNOWN_IMAGE, PHOTO], { ood_threshold: "1e6" }, "?ood_threshold=-1e6");
    expect((await viaForm.json<{ results: Result[] }>()).results.map((r) => r.unknown)).toEqual([false, false]);
    const formLow = await postForm([KNOWN_IMAGE, PHOTO], { ood_threshold: String(below) });
    expect((await formLow.json<{ results: Result[] }>()).results.map((r) => r.unknown)).toEqual([true, true]);
  });

  it("gives each image of a batch its own verdict, in order, as it would get alone", async () => {
    const images = [KNOWN[1]!.bytes, UNLIKE[0]!.bytes, KNOWN[2]!.bytes, UNLIKE[1]!.bytes, UNLIKE[2]!.bytes, KNOWN[3]!.bytes];
    const response = await postForm(images, { top_k: "3" });
    expect(response.status).toBe(200);
    const body = await response.json<{ model: string; results: Result[] }>();
    expect(body.results.map((r) => r.unknown)).toEqual([false, true, false, true, true, false]);
    for (const [i, bytes] of images.entries()) {
      expect(Object.keys(body.results[i]!)).toEqual(["predictions", "unknown", "ood_score"]);
      const alone = await answer(bytes, "?top_k=3");
      expect(body.results[i]).toEqual({ predictions: alone.predictions, unknown: alone.unknown, ood_score: alone.ood_score });
    }
  });

  const bad: [string, () => Promise<Response>][] = [
    ["a word in the query", () => post(KNOWN_IMAGE, "?ood_threshold=abc")],
    ["NaN in the query", () => post(KNOWN_IMAGE, "?ood_threshold=NaN")],
    ["Infinity in the query", () => post(KNOWN_IMAGE, "?ood_threshold=Infinity")],
    ["a number past float64 in the query", () => post(KNOWN_IMAGE, "?ood_threshold=1e999")],
    ["true in the query", () => post(KNOWN_IMAGE, "?ood_threshold=true")],
    ["a JSON boolean", () => postJson({ image: base64(KNOWN_IMAGE), ood_threshold: true })],
    ["JSON null", () => postJson({ image: base64(KNOWN_IMAGE), ood_threshold: null })],
    ["a JSON array", () => postJson({ image: base64(KNOWN_IMAGE), ood_threshold: [1] })],
    ["a JSON string that is no number", () => postJson({ image: base64(KNOWN_IMAGE), ood_threshold: "high" })],
    ["a form field that is no number", () => postForm([KNOWN_IMAGE], { ood_threshold: "0x10" })],
  ];
  it.each(bad)("400 invalid_ood_threshold for %s", async (_, send) => {
    const response = await send();
    expect(response.status).toBe(400);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("invalid_ood_threshold");
    expect(body.error.message).toMatch(/ood_threshold/);
  });

  it("describes the verdict and the threshold in /openapi.json", async () => {
    const doc = await (await SELF.fetch("https://edge.test/openapi.json")).json<{
      paths: Record<string, { post: { parameters: { name: string; in: string; schema: { description?: string } }[] } }>;
      components: { schemas: Record<string, { properties: Record<string, { description?: string }>; required?: string[] }> };
    }>();
    const parameter = doc.paths["/v1/classify"]!.post.parameters.find((p) => p.name === "ood_threshold");
    expect(parameter?.in).toBe("query");
    expect(JSON.stringify(parameter)).toMatch(/model's own threshold/);
    expect(JSON.stringify(parameter)).toMatch(/without a calibration/);
    for (const name of ["ClassifyResponse", "ClassifyResult"]) {
      const schema = doc.components.schemas[name]!;
      expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["predictions", "unknown", "ood_score"]));
      expect(schema.required).toEqual(expect.arrayContaining(["predictions", "unknown", "ood_score"]));
    }
    expect(Object.keys(doc.components.schemas.ClassifyJsonRequest!.properties)).toContain("ood_threshold");
  });
});

describe("a package without a calibration", () => {
  beforeEach(async () => {
    await publishToBucket(env.MODELS, { manifest: parseManifest(tinyManifest), weights: new Uint8Array(tinyWeights) });
  });

  it("answers unknown false and ood_score null, with or without a threshold, its scores its own softmax", async () => {
    // An app of its own, which loads this package at its first request (the test Worker's would switch to it
    // in the background, answering with the model it has meanwhile).
    const app = createApp({ models: createModelHolder() });
    const send: Fetch = async (url, init) => app.request(url, init, { ...env, POINTER_CHECK_SECONDS: "0" });
    for (const query of ["?top_k=10", "?top_k=10&ood_threshold=-1000"]) {
      const body = await answer(testPicture(40, 2), query, send);
      expect(body.model).toBe("tiny-package");
      expect(body.unknown).toBe(false);
      expect(body.ood_score).toBeNull();
      expect(body.predictions.reduce((a, p) => a + p.score, 0)).toBeCloseTo(1, 5);
    }
    const batch = await postForm([testPicture(40, 2), testPicture(30, 3)], { ood_threshold: "-5" }, "", send);
    const results = (await batch.json<{ results: Result[] }>()).results;
    expect(results.map((r) => [r.unknown, r.ood_score])).toEqual([
      [false, null],
      [false, null],
    ]);
    // Bad thresholds are refused the same, calibration or not.
    expect((await post(testPicture(40, 2), "?ood_threshold=yes", send)).status).toBe(400);
  });
});
