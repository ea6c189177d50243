/**
 * Streaming reader for the safetensors format (https://github.com/huggingface/safetensors#format):
 * an 8-byte little-endian header length, a JSON header, then the tensors' bytes back to back.
 *
 * Bytes are copied from each incoming chunk straight into the destination the caller chose for each
 * tensor (for dense weights: the int8 kernel's memory), so the file never exists whole in memory.
 */

export type Dtype = "I8" | "U8" | "F32" | "I32" | "F16";

const DTYPE_BYTES: Record<Dtype, number> = { I8: 1, U8: 1, F32: 4, I32: 4, F16: 2 };

/** A header larger than this is not a model we wrote: refuse it before buffering it. */
const MAX_HEADER_BYTES = 1 << 20;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range within the data section (after the header). */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** Parses and checks a header: known dtypes, sizes that match shapes, contiguous in-bounds ranges. */
export function parseHeader(json: string, dataBytes?: number): TensorInfo[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new SafetensorsError("safetensors header is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null) throw new SafetensorsError("safetensors header is not an object");
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === "__metadata__") continue;
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v.dtype !== "string" || !(v.dtype in DTYPE_BYTES))
      throw new SafetensorsError(`tensor ${name}: unsupported dtype ${String(v.dtype)}`);
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new SafetensorsError(`tensor ${name}: bad shape`);
    if (!Array.isArray(v.data_offsets) || v.data_offsets.length !== 2) throw new SafetensorsError(`tensor ${name}: bad data_offsets`);
    const [begin, end] = v.data_offsets as number[];
    const dtype = v.dtype as Dtype;
    const shape = v.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (!Number.isInteger(begin) || !Number.isInteger(end) || end! - begin! !== expected) {
      throw new SafetensorsError(`tensor ${name}: ${String(end! - begin!)} bytes for shape [${shape}] of ${dtype}`);
    }
    tensors.push({ name, dtype, shape, begin: begin!, end: end! });
  }
  tensors.sort((a, b) => a.begin - b.begin);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor) throw new SafetensorsError(`tensor ${t.name}: data is not contiguous`);
    cursor = t.end;
  }
  if (dataBytes !== undefined && cursor !== dataBytes) {
    throw new SafetensorsError(`safetensors data is ${dataBytes} bytes, header describes ${cursor}`);
  }
  return tensors;
}

/**
 * Routes a safetensors byte stream into caller-chosen buffers. `route` sees the parsed header once (and
 * throws if the tensors are not what it expects); it returns the function that gives each tensor's
 * exact-size buffer, asked for in file order when the tensor's first byte arrives, so a caller can
 * allocate late. Feed chunks with `write`, then call `end`.
 */
export function createSafetensorsSink(totalBytes: number, route: (tensors: TensorInfo[]) => (tensor: TensorInfo) => Uint8Array) {
  const prefix = new Uint8Array(8);
  let prefixFilled = 0;
  let header: Uint8Array | undefined;
  let headerFilled = 0;
  let targets: { info: TensorInfo; begin: number; end: number; into?: Uint8Array }[] = [];
  let destination: (tensor: TensorInfo) => Uint8Array = () => new Uint8Array();
  let dataStart = 0;
  let position = 0; // bytes of the file consumed so far
  let next = 0; // first target that may still need bytes

  function startData() {
    const tensors = parseHeader(new TextDecoder().decode(header), totalBytes - dataStart);
    destination = route(tensors);
    targets = tensors.map((t) => ({ info: t, begin: dataStart + t.begin, end: dataStart + t.end }));
  }

  function bufferFor(target: (typeof targets)[number]): Uint8Array {
    if (!target.into) {
      const into = destination(target.info);
      const bytes = target.end - target.begin;
      if (into.byteLength !== bytes)
        throw new SafetensorsError(`tensor ${target.info.name}: destination holds ${into.byteLength} bytes, tensor has ${bytes}`);
      target.into = into;
    }
    return target.into;
  }

  return {
    write(chunk: Uint8Array): void {
      let offset = 0;
      if (prefixFilled < 8) {
        const n = Math.min(8 - prefixFilled, chunk.length);
        prefix.set(chunk.subarray(0, n), prefixFilled);
        prefixFilled += n;
        offset += n;
        position += n;
        if (prefixFilled < 8) return;
        const length = Number(new DataView(prefix.buffer).getBigUint64(0, true));
        if (length > MAX_HEADER_BYTES || 8 + length > totalBytes)
          throw new SafetensorsError(`safetensors header length ${length} is implausible`);
        header = new Uint8Array(length);
        dataStart = 8 + length;
      }
      if (header && headerFilled < header.length) {
        const n = Math.min(header.length - headerFilled, chunk.length - offset);
        header.set(chunk.subarray(offset, offset + n), headerFilled);
        headerFilled += n;
        offset += n;
        position += n;
        if (headerFilled < header.length) return;
        startData();
      }
      // Data: copy the slice of this chunk that falls in each target's byte range.
      const chunkEnd = position + (chunk.length - offset);
      if (chunkEnd > totalBytes) throw new SafetensorsError(`weights stream is longer than the ${totalBytes} bytes announced`);
      while (next < targets.length && position < chunkEnd) {
        const t = targets[next]!;
        const from = Math.max(position, t.begin);
        const to = Math.min(chunkEnd, t.end);
        if (to > from) bufferFor(t).set(chunk.subarray(offset + (from - position), offset + (to - position)), from - t.begin);
        if (to === t.end) next++;
        else break;
      }
      position = chunkEnd;
    },
    end(): void {
      if (position !== totalBytes || next !== targets.length) {
        throw new SafetensorsError(`weights stream ended after ${position} of ${totalBytes} bytes`);
      }
    },
  };
}
