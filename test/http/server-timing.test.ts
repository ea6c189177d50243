import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { serverTiming } from "../../src/http/server-timing";
import { appWithEnv } from "../support/app-with-env";
import { testPicture } from "../support/png";
import { makeTinyPackage, publishToBucket } from "../support/tiny-package";

describe("serverTiming", () => {
  it("reports the phases that took time, in order, and drops those that read 0", () => {
    expect(serverTiming({ decode: 3, preprocess: 0, inference: 81.26 })).toBe("decode;dur=3.0, inference;dur=81.3");
    expect(serverTiming({ decode: 0.04, preprocess: -1, inference: Number.NaN })).toBeUndefined();
    expect(serverTiming({ decode: 0.05 })).toBe("decode;dur=0.1");
    expect(serverTiming({})).toBeUndefined();
  });
});

describe("Server-Timing on classify answers", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-timing-v1" }));
  });

  it("names every phase with its time when the clock advances, and never a phase of 0 ms", async () => {
    const app = appWithEnv({});
    await app("/readyz");
    // A clock that moves 1.5 ms at every reading, so each phase takes time whatever this machine's speed.
    let now = 0;
    vi.spyOn(performance, "now").mockImplementation(() => (now += 1.5));
    for (let seed = 1; seed <= 3; seed++) {
      const response = await app("/v1/classify", { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(24, seed) });
      expect(response.status).toBe(200);
      const header = response.headers.get("server-timing");
      expect(header).not.toBeNull();
      const phases = header!.split(", ").map((part) => part.split(";dur="));
      expect(phases.map(([name]) => name)).toEqual(["decode", "preprocess", "inference"]);
      for (const [, dur] of phases) expect(Number(dur)).toBeGreaterThan(0);
    }
  });

  it("sends no Server-Timing when the clock does not advance during the work, as on a deployed Worker", async () => {
    const app = appWithEnv({});
    await app("/readyz");
    vi.useFakeTimers({ toFake: ["performance"] });
    const response = await app("/v1/classify", { method: "POST", headers: { "content-type": "image/png" }, body: testPicture(40, 1) });
    expect(response.status).toBe(200);
    expect(response.headers.get("server-timing")).toBeNull();
  });
});
