import { env, SELF } from "cloudflare:test";
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
  afterEach(() => vi.useRealTimers());

  beforeEach(async () => {
    await publishToBucket(env.MODELS, await makeTinyPackage({ id: "tiny-timing-v1" }));
  });

  it("never shows a phase as 0 ms", async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const response = await SELF.fetch("https://edge.test/v1/classify", {
        method: "POST",
        headers: { "content-type": "image/png" },
        body: testPicture(24, seed),
      });
      expect(response.status).toBe(200);
      const header = response.headers.get("server-timing");
      if (header === null) continue;
      for (const part of header.split(", ")) {
        const [name, dur] = part.split(";dur=");
        expect(["decode", "preprocess", "inference"]).toContain(name);
        expect(Number(dur)).toBeGreaterThan(0);
      }
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
