import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Worker tests run inside workerd with a real (local, per-test isolated) R2 bucket.
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      // Check the model pointer on every request, so a test that publishes a package sees it at once.
      miniflare: { bindings: { POINTER_CHECK_SECONDS: "0" } },
    }),
  ],
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
  },
});
