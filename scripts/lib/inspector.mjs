/**
 * The Worker isolate's V8 inspector, as `wrangler dev --inspector-port N` exposes it, for measuring memory
 * from outside the Worker (docs/memory.md, "Measuring an isolate").
 *
 * - The WebSocket is at ws://HOST:N/ws and refuses a connection without an `Origin` header; Node 22's global
 *   WebSocket (undici) takes `headers` as a non-standard option, so no package is needed.
 * - `Runtime.getHeapUsage` answers usedSize (the JS heap's live objects, plus garbage not yet collected) and
 *   backingStorageSize (ArrayBuffer contents). wasm memories are in neither: the Worker's /readyz adds the
 *   engine's own count.
 * - `HeapProfiler.collectGarbage` runs only at the isolate's next event, so `collectGarbage` sends a request
 *   right after it (`nudge`); alone it can wait 15 s.
 * - The inspector answers between the isolate's tasks only: a synchronous decode or forward pass is seen at
 *   its edges, not inside it.
 */

/**
 * @param {{ port: number, host?: string, timeoutMs?: number, nudge?: () => Promise<unknown> }} options
 *   nudge: sends any request to the Worker, so that a forced GC runs now.
 */
export async function connectInspector({ port, host = "127.0.0.1", timeoutMs = 60_000, nudge }) {
  const url = `ws://${host}:${port}/ws`;
  const deadline = Date.now() + timeoutMs;
  let socket;
  let lastError = "no answer";
  // The inspector port opens a little after wrangler prints its URL: retry until the deadline.
  while (!socket) {
    try {
      socket = await open(url);
    } catch (error) {
      lastError = error.message;
      if (Date.now() > deadline)
        throw new Error(`the V8 inspector at ${url} did not accept a connection within ${timeoutMs / 1000} s (${lastError})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  let nextId = 1;
  const pending = new Map();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data));
    const waiter = message.id !== undefined && pending.get(message.id);
    if (!waiter) return; // events (console messages, ...) are not needed here
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  socket.addEventListener("close", () => {
    for (const waiter of pending.values()) waiter.reject(new Error(`the inspector connection closed during ${waiter.method}`));
    pending.clear();
  });

  /** One inspector command; rejects after `ms` (the isolate may be busy in one long synchronous task). */
  function send(method, params = {}, ms = 60_000) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${method}: no answer from the inspector within ${ms / 1000} s`));
      }, ms);
      pending.set(id, {
        method,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      socket.send(JSON.stringify({ id, method, params }));
    });
  }

  await send("Runtime.enable");

  return {
    send,
    /** `{ usedSize, totalSize, backingStorageSize, ... }` in bytes, as V8 reports them now. */
    heapUsage: () => send("Runtime.getHeapUsage"),
    /**
     * Forces a full GC and waits for it: the following heapUsage counts live memory only. It waits for the
     * isolate to finish what it is doing, which under load can be minutes of synchronous work.
     */
    async collectGarbage(ms = 600_000) {
      const done = send("HeapProfiler.collectGarbage", {}, ms);
      await new Promise((r) => setTimeout(r, 100));
      if (nudge) await nudge().catch(() => {});
      await done;
    },
    close() {
      socket.close();
    },
  };
}

function open(url) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers: { Origin: "http://127.0.0.1" } });
    socket.addEventListener("open", () => resolve(socket), { once: true });
    socket.addEventListener("error", (event) => reject(new Error(event.message ?? "WebSocket error")), { once: true });
  });
}

/**
 * Samples `inspector.heapUsage()` every `intervalMs` until stopped, keeping the largest usedSize and
 * backingStorageSize (each at its own peak) and their largest sum in one sample.
 */
export function startHeapSampler(inspector, intervalMs = 25) {
  const peak = { usedSize: 0, backingStorageSize: 0, sum: 0, samples: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const h = await inspector.heapUsage();
        peak.usedSize = Math.max(peak.usedSize, h.usedSize);
        peak.backingStorageSize = Math.max(peak.backingStorageSize, h.backingStorageSize);
        peak.sum = Math.max(peak.sum, h.usedSize + h.backingStorageSize);
        peak.samples++;
      } catch {
        // A slow answer (the isolate was busy) is not a sample; keep going.
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}
