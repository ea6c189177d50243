/**
 * A fault injector around the real (local) R2 binding: reads go to the real bucket, except those a test
 * aims a fault at, which fail the way R2 fails on the wire: the call throws, never answers, or the body
 * errors, stalls or ends early after some bytes while the object still announces its full size.
 */

export type FaultKind = "throw" | "hang" | "error-midway" | "cut-short" | "stall-midway";

export interface Fault {
  kind: FaultKind;
  /** Which object keys it hits. */
  key: RegExp;
  /** For the body faults: how many bytes get through first. */
  afterBytes?: number;
}

export interface FaultyBucket {
  bucket: R2Bucket;
  /** The faults in force; tests add and clear them as they go. */
  faults: Fault[];
  /** Every key read through this bucket, in order. */
  gets: string[];
}

export function faultyBucket(real: R2Bucket): FaultyBucket {
  const faults: Fault[] = [];
  const gets: string[] = [];
  async function get(key: string, options?: R2GetOptions) {
    gets.push(key);
    const fault = faults.find((f) => f.key.test(key));
    if (fault?.kind === "throw")
      throw new Error(`injected R2 fault: get ${key}: We encountered an internal error. Please try again. (10001)`);
    if (fault?.kind === "hang") return new Promise<never>(() => {});
    const object = await real.get(key, options);
    if (!object || !fault || !("body" in object)) return object;
    return withBody(object, faultyBody(object.body, fault));
  }
  const bucket = new Proxy(real, {
    get(target, property) {
      if (property === "get") return get;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { bucket, faults, gets };
}

/** The object with its body (and the readers built on it) replaced. */
function withBody(object: R2ObjectBody, body: ReadableStream<Uint8Array>): R2ObjectBody {
  const text = () => new Response(body).text();
  return new Proxy(object, {
    get(target, property) {
      if (property === "body") return body;
      if (property === "text") return text;
      if (property === "json") return async () => JSON.parse(await text());
      if (property === "arrayBuffer") return () => new Response(body).arrayBuffer();
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function faultyBody(source: ReadableStream<Uint8Array>, fault: Fault): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const limit = fault.afterBytes ?? 0;
  let sent = 0;
  return new ReadableStream({
    type: "bytes",
    async pull(controller) {
      if (sent >= limit) {
        await reader.cancel().catch(() => {});
        if (fault.kind === "error-midway") controller.error(new Error("injected R2 fault: the connection was reset"));
        else if (fault.kind === "cut-short") controller.close();
        else if (fault.kind === "stall-midway") await new Promise<never>(() => {});
        return;
      }
      const { done, value } = await reader.read();
      if (done) return controller.close();
      const part = value.slice(0, Math.min(value.length, limit - sent));
      sent += part.length;
      controller.enqueue(part);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}
