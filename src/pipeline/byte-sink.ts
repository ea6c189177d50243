/**
 * A byte buffer that grows in place up to a fixed maximum, for bodies and decoded images whose final size is
 * known only at the end. It sits on a resizable ArrayBuffer (ES2024): V8 reserves address space for the
 * maximum and commits memory as it grows, so a growing buffer is never copied and holds only what it holds,
 * where a grow-by-copy one would briefly hold 1.5x to 3x its contents.
 */

type ResizableArrayBuffer = ArrayBuffer & { resize(bytes: number): void };
const ResizableArrayBuffer = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ResizableArrayBuffer;

/** Smallest growth step: fewer, larger resizes; a page of wasm or V8 memory is 64 KiB. */
const MIN_GROWTH = 64 * 1024;
/**
 * Growth factor: resizing is in place, so growing often is cheap; a small factor keeps what is committed
 * beyond the contents under a quarter of them.
 */
const GROWTH = 1.25;

export class ByteSink {
  private readonly buffer: ResizableArrayBuffer;
  private bytes: Uint8Array;
  length = 0;

  /**
   * @param maxBytes the most it may hold; one byte more calls `overflow`, whose error is thrown.
   * @param initialBytes what to commit at once.
   * @param commit called with the new size before each growth (the memory ledger's account); throws to refuse it.
   */
  constructor(
    readonly maxBytes: number,
    initialBytes: number,
    private readonly overflow: () => Error,
    private readonly commit?: (bytes: number) => void,
  ) {
    commit?.(Math.min(initialBytes, maxBytes));
    this.buffer = new ResizableArrayBuffer(Math.min(initialBytes, maxBytes), { maxByteLength: maxBytes });
    this.bytes = new Uint8Array(this.buffer);
  }

  push(byte: number): void {
    if (this.length === this.bytes.length) this.grow(1);
    this.bytes[this.length++] = byte;
  }

  append(chunk: Uint8Array): void {
    if (this.length + chunk.length > this.bytes.length) this.grow(chunk.length);
    this.bytes.set(chunk, this.length);
    this.length += chunk.length;
  }

  /** The bytes so far, without a copy. */
  view(): Uint8Array {
    return new Uint8Array(this.buffer, 0, this.length);
  }

  private grow(extra: number): void {
    const needed = this.length + extra;
    if (needed > this.maxBytes) throw this.overflow();
    const next = Math.min(this.maxBytes, Math.max(needed, Math.ceil(this.bytes.length * GROWTH), this.bytes.length + MIN_GROWTH));
    this.commit?.(next);
    this.buffer.resize(next);
    this.bytes = new Uint8Array(this.buffer);
  }
}
