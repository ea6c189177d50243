import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** A request log line as vitest prints it, with or without its colour code (ESC [ n m) before the message. */
const REQUEST_LOG_LINE = new RegExp(`^\\{\\s*message: (${String.fromCharCode(27)}\\[\\d+m)?'request'`);

// Worker tests run inside workerd with a real (local, per-test isolated) R2 bucket.
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Check the model pointer on every request, so a test that publishes a package sees it at once.
        // No API keys and no CORS, whatever a developer's .dev.vars holds: tests that need them set them
        // on their own app (test/http/api-keys.test.ts, test/http/cors.test.ts).
        // FUZZ_*: test/http/fuzz.test.ts's seed, case count and strict switch, from the shell's environment.
        bindings: {
          POINTER_CHECK_SECONDS: "0",
          API_KEYS: "",
          CORS_ORIGINS: "",
          FUZZ_SEED: process.env.FUZZ_SEED ?? "",
          FUZZ_CASES: process.env.FUZZ_CASES ?? "",
          FUZZ_STRICT: process.env.FUZZ_STRICT ?? "",
          FUZZ_BATCH: process.env.FUZZ_BATCH ?? "",
        },
        ratelimits: {
          // wrangler.toml's 60 a minute would throttle the suite, whose requests all come from one address.
          RATE_LIMITER: { namespace_id: "1001", simple: { limit: 1_000_000, period: 60 } },
          // A limiter that runs out after 3, for the tests of the 429 answer (Miniflare simulates it).
          TIGHT_RATE_LIMITER: { namespace_id: "1002", simple: { limit: 3, period: 60 } },
        },
      },
    }),
  ],
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    // The Worker writes one log line per request (src/http/middleware/request-log.ts): hundreds per run.
    // Tests that check them spy on console; here they would only bury the output that matters.
    onConsoleLog: (log) => !REQUEST_LOG_LINE.test(log),
  },
});
