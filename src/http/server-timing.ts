/**
 * The Server-Timing header (https://www.w3.org/TR/server-timing/), honest about the runtime's clock. A
 * deployed Worker's clock advances only at I/O (https://developers.cloudflare.com/workers/runtime-apis/performance/),
 * so a phase of pure compute (decode, inference) reads 0 ms there although it took real CPU. A phase is
 * reported only where the clock advanced; when none did, there is no header at all. Deployed, CPU time per
 * request is in Workers Logs and the Worker's analytics instead.
 */

/**
 * `decode;dur=3.0, inference;dur=81.0` for the phases that read at least 0.1 ms (what one decimal shows), in
 * the order given; undefined if none did.
 */
export function serverTiming(phases: Record<string, number>): string | undefined {
  const parts: string[] = [];
  for (const [name, ms] of Object.entries(phases)) {
    const shown = Number.isFinite(ms) ? ms.toFixed(1) : "";
    if (Number(shown) > 0) parts.push(`${name};dur=${shown}`);
  }
  return parts.length > 0 ? parts.join(", ") : undefined;
}
