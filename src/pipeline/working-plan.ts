/** How a classify request holds its images' memory: batched dense layers where its share allows. */
import { MAX_IMAGE_WORKING_BYTES } from "../config";

/**
 * What decoding a request's images holds at most, and whether the batch may keep every image's features
 * for one dense pass: image i is decoded while the features of the i before it are held, so batching needs
 * max(working_i + i * features) within what one image may use; a request whose largest image already takes
 * that share (a 16 MP photo beside small ones) is classified image by image instead.
 */
export function workingPlan(workingBytes: readonly number[], featureBytes: number): { bytes: number; batched: boolean } {
  const alone = Math.max(...workingBytes);
  if (workingBytes.length < 2) return { bytes: alone, batched: false };
  const batched = Math.max(...workingBytes.map((w, i) => w + i * featureBytes));
  return batched <= MAX_IMAGE_WORKING_BYTES ? { bytes: batched, batched: true } : { bytes: alone, batched: false };
}
