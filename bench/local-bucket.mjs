/**
 * The local bucket that `wrangler dev --persist-to DIR` serves, opened once through Miniflare for the whole
 * benchmark, with the calls scripts/lib/publish.mjs makes (get, digest, put, remove). scripts/lib/wrangler-r2.mjs
 * does the same through one `wrangler r2 object` process per call, which took ~30 s per call on a loaded
 * 2-core machine: a publish would then last minutes. Same storage (DIR/v3, wrangler's layout), same effect.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

/** @returns {Promise<{ mode: "local", describe: string, get, digest, put, remove, close: () => Promise<void> }>} */
export async function openLocalBucket({ bucket, persistTo }) {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: "export default { fetch() { return new Response(null, { status: 404 }); } };",
      resourcePersistencePath: join(persistTo, "v3"),
      r2Buckets: { BUCKET: bucket },
    }),
  );
  const r2 = await mf.getR2Bucket("BUCKET");
  const read = async (key) => {
    const object = await r2.get(key);
    return object ? Buffer.from(await object.arrayBuffer()) : null;
  };
  return {
    mode: "local",
    describe: `local bucket ${bucket} in ${persistTo}`,
    get: read,
    async digest(key) {
      const bytes = await read(key);
      return bytes && { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
    },
    async put(key, { file, data, contentType }) {
      await r2.put(key, data ?? readFileSync(file), { httpMetadata: { contentType } });
    },
    async remove(key) {
      await r2.delete(key);
    },
    close: () => mf.dispose(),
  };
}
