import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { estimateLoadBytes } from "../../src/engine/load-memory";
import { createApp } from "../../src/http/app";
import { createMemoryBudget, type MemoryBudget } from "../../src/memory/budget";
import { createModelHolder, type ModelHolder, type ModelHolderOptions } from "../../src/model/served-model";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket, type TinyPackage } from "../support/tiny-package";
import { loggedEvents } from "../support/logged-events";

const CONCURRENCY = 8;
/** Answers collected before the publish starts, and after the first answer from the new model. */
const BEFORE = 16;
const AFTER = 40;
/** A run that has not seen the switch after this many requests has failed. */
const MAX_REQUESTS = 600;

const budgetOf = (capacityBytes: number) => createMemoryBudget({ capacityBytes, maxQueue: 16, maxWaitMs: 2000, retryAfterSeconds: 1 });

function setup(options: ModelHolderOptions & { budget?: MemoryBudget } = {}) {
  const budget = options.budget ?? budgetOf(112 * 1024 * 1024);
  const models = createModelHolder({ ...options, budget });
  // Requests reserve their bodies and decodes in a ledger of their own here: these tests size `budget` to
  // one or two tiny models, which a request's 9 MiB worst case would crowd out (test/http/classify-memory.test.ts
  // covers requests in the ledger; in the Worker both share one).
  const app = createApp({ models, budget: budgetOf(64 * 1024 * 1024) });
  const contexts: ExecutionContext[] = [];
  /** One request as the runtime sends it: with an ExecutionContext, so the pointer check runs in waitUntil. */
  const classify = (withContext = true) => {
    const ctx = withContext ? createExecutionContext() : undefined;
    if (ctx) contexts.push(ctx);
    const init = { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, 1) };
    return app.request("https://edge.test/v1/classify", init, { ...env, POINTER_CHECK_SECONDS: "0" }, ctx);
  };
  const settle = () => Promise.all(contexts.splice(0).map((ctx) => waitOnExecutionContext(ctx)));
  return { budget, models, classify, settle };
}

interface Answer {
  status: number;
  model: string | undefined;
  /** Requests started before this one. */
  startedAfter: number;
  /** Requests started when this one completed. */
  startedByEnd: number;
  /** The model the holder served when this request started. */
  servedAtStart: string | undefined;
}

/**
 * Sends requests, CONCURRENCY at a time, while `publish` runs: it starts after BEFORE answers, and the run
 * ends AFTER answers past the first one that names `newId`. `sample` runs at every request's start and end.
 */
async function throughPublish(
  run: { models: ModelHolder; classify: () => Response | Promise<Response> },
  publish: () => Promise<void>,
  done: (answers: Answer[]) => boolean,
  sample: () => void = () => {},
): Promise<Answer[]> {
  const answers: Answer[] = [];
  let started = 0;
  let publishing: Promise<void> | undefined;
  const worker = async () => {
    while (!done(answers) && started < MAX_REQUESTS) {
      const answer = { startedAfter: started++, servedAtStart: run.models.served()?.id } as Answer;
      sample();
      const response = await run.classify();
      sample();
      answer.status = response.status;
      answer.model = response.status === 200 ? (await response.json<{ model: string }>()).model : undefined;
      answer.startedByEnd = started;
      answers.push(answer);
      // A client's requests arrive as separate events; a loop that never waits would starve the publish's R2 writes.
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (answers.length === BEFORE) publishing = publish();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await publishing;
  return answers;
}

const afterFirst = (id: string) => (answers: Answer[]) => {
  const first = answers.findIndex((a) => a.model === id);
  return first >= 0 && answers.length - first >= AFTER;
};

/** The JSON events the model holder logged with console.log. */
const events = loggedEvents;

function expectCleanSwitch(answers: Answer[], oldId: string, newId: string): void {
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  expect(new Set(answers.map((a) => a.model))).toEqual(new Set([oldId, newId]));
  // Once a request has been answered by the new model, no request started later gets the old one ...
  const firstNew = answers.find((a) => a.model === newId)!;
  expect(answers.filter((a) => a.startedAfter >= firstNew.startedByEnd && a.model !== newId)).toEqual([]);
  // ... nor does any request that started after the holder had switched.
  expect(answers.filter((a) => a.servedAtStart === newId && a.model !== newId)).toEqual([]);
}

let packages: TinyPackage[] | undefined;
async function tinyPackages(): Promise<[TinyPackage, TinyPackage]> {
  packages ??= [await makeTinyPackage({ id: "switch-old-v1" }), await makeTinyPackage({ id: "switch-new-v1", seed: 2 })];
  return packages as [TinyPackage, TinyPackage];
}

/** A budget with room for one tiny model, not two: the switch must free the old one first. */
/**
 * Room for one model's load, not for a second beside a resident one: the load estimate plus a quarter of the
 * weights file, less than any resident model holds (its packed int8 weights alone are over half the file).
 */
async function oneModelBudget(pkg: TinyPackage): Promise<MemoryBudget> {
  return budgetOf(Math.round((await estimateLoadBytes(pkg.manifest)) + 0.25 * pkg.manifest.weights.bytes));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("switching models under load", () => {
  it("fails no request at concurrency 8 through a publish when both models fit: each answer names the old or the new model, none the old after the switch", async () => {
    const [oldPkg, newPkg] = await tinyPackages();
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await publishToBucket(env.MODELS, oldPkg);
    const run = setup();
    const answers = await throughPublish(run, () => publishToBucket(env.MODELS, newPkg), afterFirst(newPkg.manifest.id));
    await run.settle();

    expectCleanSwitch(answers, oldPkg.manifest.id, newPkg.manifest.id);
    expect(events(log).filter((e: Record<string, unknown>) => e.event === "model_switched")).toEqual([
      expect.objectContaining({ mode: "beside", to: newPkg.manifest.id }),
    ]);
    expect(run.models.served()?.id).toBe(newPkg.manifest.id);
    // The old model's memory went back to the budget once its last request finished.
    expect(run.budget.snapshot()).toEqual([{ label: `model ${newPkg.manifest.id}`, bytes: run.models.served()!.residentBytes }]);
  });

  it("fails no request when the budget holds only one model: requests wait while the old one is freed and the new one loads, and two models are never reserved", async () => {
    const [oldPkg, newPkg] = await tinyPackages();
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await publishToBucket(env.MODELS, oldPkg);
    const run = setup({ budget: await oneModelBudget(oldPkg) });
    let mostModels = 0;
    const sample = () => {
      mostModels = Math.max(mostModels, run.budget.snapshot().filter((r) => r.label.startsWith("model ")).length);
      expect(run.budget.reservedBytes).toBeLessThanOrEqual(run.budget.capacityBytes);
    };
    const sampler = setInterval(sample, 1);
    const answers = await throughPublish(run, () => publishToBucket(env.MODELS, newPkg), afterFirst(newPkg.manifest.id), sample);
    clearInterval(sampler);
    await run.settle();

    expectCleanSwitch(answers, oldPkg.manifest.id, newPkg.manifest.id);
    expect(events(log).filter((e: Record<string, unknown>) => e.event === "model_switched")).toEqual([
      expect.objectContaining({ mode: "free-first", to: newPkg.manifest.id }),
    ]);
    expect(mostModels).toBe(1);
    // Some requests arrived while no model was resident (between freeing the old and loading the new), and waited.
    expect(answers.filter((a) => a.servedAtStart === undefined).length).toBeGreaterThan(0);
  });

  it("serves the old model again, reloaded, when a new package fails its checks after the old one was freed, and does not retry it on every request", async () => {
    const [oldPkg] = await tinyPackages();
    const broken = await makeTinyPackage({ id: "switch-broken-v1", seed: 3 });
    broken.weights = broken.weights.slice();
    broken.weights[broken.weights.length - 5]! ^= 0xff; // same length, fails its SHA-256 check at the end
    vi.spyOn(console, "log").mockImplementation(() => {});
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    await publishToBucket(env.MODELS, oldPkg);
    const run = setup({ budget: await oneModelBudget(oldPkg), retry: { baseMs: 60_000, maxMs: 60_000 } });
    let loadsAfterFailure: number | undefined;
    const answers = await throughPublish(
      run,
      () => publishToBucket(env.MODELS, broken),
      (all) => {
        if (loadsAfterFailure === undefined && loggedEvents(errors).length > 0) loadsAfterFailure = all.length;
        return loadsAfterFailure !== undefined && all.length - loadsAfterFailure >= AFTER;
      },
    );
    await run.settle();

    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(new Set(answers.map((a) => a.model))).toEqual(new Set([oldPkg.manifest.id]));
    expect(run.models.served()?.id).toBe(oldPkg.manifest.id);
    // old, the broken one (once, whatever the number of requests since), old again
    expect(run.models.loadCount).toBe(3);
    const failures = loggedEvents(errors);
    expect(failures).toEqual([
      expect.objectContaining({ event: "model_load_failed", model: "switch-broken-v1", code: "model_corrupt", attempt: 1 }),
    ]);
  });

  it("keeps serving the old model beside a corrupt new package, retrying the new one with exponential backoff", async () => {
    const [oldPkg] = await tinyPackages();
    const broken = await makeTinyPackage({ id: "switch-corrupt-v1", seed: 4 });
    vi.spyOn(console, "log").mockImplementation(() => {});
    vi.spyOn(console, "error").mockImplementation(() => {});
    await publishToBucket(env.MODELS, oldPkg);
    const clock = { now: 0 };
    const run = setup({ now: () => clock.now, retry: { baseMs: 1000, maxMs: 4000 } });
    const served = async (at: number) => {
      clock.now = at;
      const response = await run.classify(false); // no waitUntil: the check completes before the answer
      expect(response.status).toBe(200);
      return (await response.json<{ model: string }>()).model;
    };
    expect(await served(0)).toBe(oldPkg.manifest.id);
    await publishToBucket(env.MODELS, { manifest: broken.manifest, weights: broken.weights.slice(0, 64) });

    // Loads of the broken package at t = 0, 1 s, 3 s, 7 s, then every 4 s (the cap): not once per request.
    const loadsAt: number[] = [];
    for (let t = 0; t <= 12_000; t += 250) {
      const before = run.models.loadCount;
      expect(await served(t)).toBe(oldPkg.manifest.id);
      if (run.models.loadCount > before) loadsAt.push(t);
    }
    expect(loadsAt).toEqual([0, 1000, 3000, 7000, 11_000]);
  });

  it("answers from the current model while the pointer check waits on R2 in waitUntil", async () => {
    const [oldPkg] = await tinyPackages();
    vi.spyOn(console, "log").mockImplementation(() => {});
    await publishToBucket(env.MODELS, oldPkg);
    let holdPointer = false;
    let releasePointer = () => {};
    let pointerAnswered = false;
    const slowPointer = new Proxy(env.MODELS, {
      get(target, property) {
        if (property !== "get") return Reflect.get(target, property, target);
        return async (key: string) => {
          if (key === "models/current.json" && holdPointer) {
            await new Promise<void>((resolve) => (releasePointer = resolve));
            pointerAnswered = true;
          }
          return target.get(key);
        };
      },
    });
    const models = createModelHolder();
    const app = createApp({ models });
    const bindings = { ...env, MODELS: slowPointer, POINTER_CHECK_SECONDS: "0" };
    const request = (ctx: ExecutionContext) =>
      app.request(
        "https://edge.test/v1/classify",
        { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, 1) },
        bindings,
        ctx,
      );
    const first = createExecutionContext();
    expect((await request(first)).status).toBe(200); // loads the model
    await waitOnExecutionContext(first);

    holdPointer = true;
    const ctx = createExecutionContext();
    const response = await request(ctx);
    expect(response.status).toBe(200);
    expect(pointerAnswered).toBe(false); // answered while the pointer read was still pending
    releasePointer();
    await waitOnExecutionContext(ctx);
    expect(pointerAnswered).toBe(true);
  });
});
