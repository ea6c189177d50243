/**
 * The local model bucket (the one `wrangler dev --persist-to DIR` serves), reached directly through
 * Miniflare instead of the wrangler CLI. `wrangler r2 object --local` opens the very same Miniflare bucket
 * on every call, after starting wrangler itself (3-5 s a call, about ten calls to publish a package, and the
 * object's bytes copied through stdin/stdout); here one Miniflare instance serves every call, and a
 * read-back is hashed inside workerd so that only the digest crosses back.
 *
 * The layout is wrangler's: `resourcePersistencePath` = DIR/v3 and a bucket named as in wrangler.toml,
 * the options wrangler's own `usingLocalBucket` passes, so wrangler dev reads what this writes.
 * Same interface as wrangler-r2.mjs's openBucket, plus close(), which callers must await.
 */
import { readFileSync } from "node:fs";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

/** A call to the local bucket failed; the message carries workerd's explanation. */
export class LocalBucketError extends Error {
  name = "LocalBucketError";
}

/** The tiny Worker that touches the bucket: PUT stores the body, GET returns it, or with ?sha256 its digest. */
const BUCKET_WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = decodeURIComponent(url.pathname.slice(1));
    try {
      if (request.method === "PUT") {
        await env.BUCKET.put(key, request.body, { httpMetadata: { contentType: request.headers.get("content-type") ?? undefined } });
        return new Response(null, { status: 204 });
      }
      if (request.method === "DELETE") {
        await env.BUCKET.delete(key);
        return new Response(null, { status: 204 });
      }
      const object = await env.BUCKET.get(key);
      if (object === null) return new Response(null, { status: 404 });
      if (!url.searchParams.has("sha256")) return new Response(object.body);
      // Counts the bytes that really stream out, not the size recorded beside them.
      let bytes = 0;
      const digest = new crypto.DigestStream("SHA-256");
      await object.body.pipeThrough(new TransformStream({ transform(chunk, out) { bytes += chunk.byteLength; out.enqueue(chunk); } })).pipeTo(digest);
      const sha256 = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
      return Response.json({ bytes, sha256 });
    } catch (error) {
      return new Response(String(error?.stack ?? error), { status: 500 });
    }
  },
};`;

/**
 * @param {{ bucket: string, persistTo: string }} options
 */
export function openLocalBucket({ bucket, persistTo }) {
  if (!persistTo) throw new Error("a local bucket needs persistTo (the directory wrangler dev persists to)");
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      // Any date the pinned workerd accepts that has the standard TransformStream constructor (2024-ish on).
      compatibilityDate: "2025-06-01",
      script: BUCKET_WORKER,
      resourcePersistencePath: `${persistTo}/v3`,
      r2Buckets: { BUCKET: bucket },
      // Request.cf is unused here; fetching it offline only prints a warning.
      cf: false,
    }),
  );

  async function call(method, key, { query = "", body, contentType } = {}) {
    const response = await mf.dispatchFetch(`http://bucket/${encodeURIComponent(key)}${query}`, {
      method,
      body,
      headers: contentType ? { "content-type": contentType } : {},
    });
    if (response.status === 404) {
      await response.arrayBuffer();
      return null;
    }
    if (!response.ok)
      throw new LocalBucketError(`local bucket ${bucket}: ${method} ${key} failed (${response.status}): ${await response.text()}`);
    return response;
  }

  /** The object's bytes, or null when there is no such object. */
  async function get(key) {
    const response = await call("GET", key);
    return response && Buffer.from(await response.arrayBuffer());
  }

  /** `{ bytes, sha256 }` of the stored object, hashed where it is stored; null when it is missing. */
  async function digest(key) {
    const response = await call("GET", key, { query: "?sha256" });
    return response && (await response.json());
  }

  /** Stores a file or a buffer. The body has a known length, which R2's put requires of a stream. */
  async function put(key, { file, data, contentType }) {
    const response = await call("PUT", key, { body: data ?? readFileSync(file), contentType });
    if (response === null) throw new LocalBucketError(`local bucket ${bucket}: PUT ${key} answered 404`);
    await response.arrayBuffer();
  }

  async function remove(key) {
    const response = await call("DELETE", key);
    await response?.arrayBuffer();
  }

  return {
    mode: "local",
    bucket,
    persistTo,
    describe: `local bucket ${bucket} in ${persistTo}`,
    get,
    digest,
    put,
    remove,
    close: () => mf.dispose(),
  };
}
