/**
 * The switch benchmark's Worker (`npm run bench:switch -- --budget-mib N`): the real app, with the isolate's
 * memory budget set from the BENCH_BUDGET_MIB var, so that a budget with room for one model only makes the
 * switch take its "free the old model, then load the new one" path. Never deployed (bench/wrangler.switch.toml).
 */
import { RETRY_AFTER_SECONDS, MEMORY_QUEUE_MAX, MEMORY_WAIT_MS } from "../src/config";
import { createApp } from "../src/http/app";
import type { Bindings } from "../src/http/env";
import { createMemoryBudget } from "../src/memory/budget";

type BenchBindings = Bindings & { BENCH_BUDGET_MIB?: string };

let app: ReturnType<typeof createApp> | undefined;

/** One app per isolate, built at the first request: the budget comes from a var, and vars arrive with requests. */
function appFor(env: BenchBindings): ReturnType<typeof createApp> {
  const mib = Number(env.BENCH_BUDGET_MIB);
  if (!(mib > 0)) throw new Error("BENCH_BUDGET_MIB must be a positive number of MiB");
  const budget = createMemoryBudget({
    capacityBytes: mib * 1048576,
    maxQueue: MEMORY_QUEUE_MAX,
    maxWaitMs: MEMORY_WAIT_MS,
    retryAfterSeconds: RETRY_AFTER_SECONDS,
  });
  return createApp({ budget });
}

export default {
  fetch(request, env, ctx) {
    app ??= appFor(env);
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<BenchBindings>;
