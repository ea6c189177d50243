/**
 * The floor for reading int8 weights from wasm memory at batch 1: one pass over `n` bytes with 128-bit
 * loads and nothing else but an add per load (AssemblyScript, `npm run build:wasm`; only the benchmark
 * loads it, bench/worker.ts). The dense kernel (dense-int8.ts) reads each weight byte once per pass, so
 * its time over this one's, on the same number of bytes, says how far it is from bandwidth-bound.
 */

/** Grows memory to hold `bytes` from address 0 and fills it (untouched pages would read as zero pages). */
export function prepare(bytes: i32): void {
  const have = <i32>memory.size() << 16;
  if (bytes > have) memory.grow((bytes - have + 0xffff) >> 16);
  memory.fill(0, 0x5a, bytes);
}

/** Reads `n` bytes (a multiple of 64) from address 0; returns a sum so the loads cannot be dropped. */
export function read(n: i32): i32 {
  let a = i32x4.splat(0);
  let b = i32x4.splat(0);
  let c = i32x4.splat(0);
  let d = i32x4.splat(0);
  for (let p: usize = 0; p < <usize>n; p += 64) {
    a = i32x4.add(a, v128.load(p));
    b = i32x4.add(b, v128.load(p, 16));
    c = i32x4.add(c, v128.load(p, 32));
    d = i32x4.add(d, v128.load(p, 48));
  }
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}
