/**
 * The resize of resize.ts, fed one source row at a time: each row goes through the horizontal pass as it
 * arrives and is added at once into the output rows whose vertical taps read it, so nothing holds more than
 * one source row and the output window, whatever the source's height. A streaming decoder hands its rows here
 * and no raster of the image ever exists.
 *
 * The arithmetic is resizeWindow's, in the same order (width first; each output value sums its source rows
 * in increasing order, in float32), so the result is bit for bit the same as resizing the whole raster.
 */
import { axisTaps, type ResizeWindow } from "./resize";

export interface RowResizer {
  /** The next source row: `width * channels` samples. */
  push(row: Uint8Array): void;
  /** Source rows taken so far. */
  readonly rows: number;
  /** The window, once every source row has been pushed: windowHeight * windowWidth * channels floats, HWC. */
  finish(): Float32Array;
  /**
   * Bytes this resizer holds: the output window, one row's horizontal pass and the filter taps (about 8 bytes
   * per source row for the vertical ones), never a raster.
   */
  readonly heldBytes: number;
}

export function createRowResizer(source: { width: number; height: number; channels: number }, target: ResizeWindow): RowResizer {
  const { width: sw, height: sh, channels: c } = source;
  const { windowHeight: wh, windowWidth: ww } = target;
  const cols = axisTaps(sw, target.width, target.left, ww);
  const rows = axisTaps(sh, target.height, target.top, wh);
  const out = new Float32Array(wh * ww * c);
  const tmp = new Float32Array(ww * c);
  const rowLength = ww * c;
  // Output rows whose taps may read source row y lie in [lo, hi): both ends only move forward as y grows,
  // because each output row's first tap and last tap grow with it.
  let lo = 0;
  let y = 0;
  return {
    get rows() {
      return y;
    },
    heldBytes: out.byteLength + tmp.byteLength + cols.weights.byteLength + rows.weights.byteLength + 8 * (ww + wh),
    push(row) {
      if (y >= sh) throw new RangeError(`row ${y} of an image of ${sh} rows`);
      if (row.length < sw * c) throw new RangeError(`row of ${row.length} samples, expected ${sw * c}`);
      // Padding rows (no taps) read nothing; rows whose last tap is behind y are done.
      while (lo < wh && (rows.count[lo] === 0 || rows.first[lo]! + rows.count[lo]! <= y)) lo++;
      let readers = false;
      for (let k = lo; k < wh; k++) {
        const n = rows.count[k]!;
        if (n === 0) continue;
        const first = rows.first[k]!;
        if (first > y) break;
        if (y >= first + n) continue;
        if (!readers) {
          horizontal(row, tmp, cols, ww, c);
          readers = true;
        }
        const w = rows.weights[k * rows.stride + (y - first)]!;
        const o = k * rowLength;
        for (let i = 0; i < rowLength; i++) out[o + i]! += w * tmp[i]!;
      }
      y++;
    },
    finish() {
      if (y !== sh) throw new RangeError(`${y} of ${sh} rows were pushed`);
      return out;
    },
  };
}

function horizontal(row: Uint8Array, tmp: Float32Array, cols: ReturnType<typeof axisTaps>, ww: number, c: number): void {
  for (let x = 0; x < ww; x++) {
    const n = cols.count[x]!;
    const w0 = x * cols.stride;
    const s0 = cols.first[x]! * c;
    const o = x * c;
    for (let ch = 0; ch < c; ch++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += cols.weights[w0 + j]! * row[s0 + j * c + ch]!;
      tmp[o + ch] = sum;
    }
  }
}
