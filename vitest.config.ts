import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Worker tests run inside workerd with a real (local, per-test isolated) R2 bucket.
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      // Check the model pointer on every request, so a test that publishes a package sees it at once.
      // FUZZ_*: test/http/fuzz.test.ts's seed, case count and strict switch, from the shell's environment.
      miniflare: {
        bindings: { POINTER_CHECK_SECONDS: "0", FUZZ_SEED: process.env.FUZZ_SEED ?? "", FUZZ_CASES: process.env.FUZZ_CASES ?? "", FUZZ_STRICT: process.env.FUZZ_STRICT ?? "", FUZZ_BATCH: process.env.FUZZ_BATCH ?? "" },
      },
    }),
  ],
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
  },
});
