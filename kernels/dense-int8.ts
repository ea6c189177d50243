/**
 * Batch-1 int8 dense layer for WebAssembly SIMD (AssemblyScript, compiled by `npm run build:wasm`).
 *
 * Weights stay int8 in this module's memory (the whole reason the 61 M-parameter AlexNet fits a 128 MB
 * Worker). Activations are quantized per call to int16 with a "wide" scale and multiplied with
 * `i32x4.dot_i16x8_s`, which beat widening the weights to f32 by 2.2x and keeps the activation error
 * ~16x lower than 8-bit activations at the same speed (docs/platform-notes.md, "int8 dense layers").
 * The arithmetic is specified in docs/model-package.md ("The served arithmetic"); the exporter
 * simulates exactly this, so keep the two in step.
 *
 * The module allocates nothing: the JS side lays out weights and scratch buffers in memory and passes
 * byte offsets.
 */

/**
 * Quantizes k f32 values at `x` into int16 at `q`, with q_i = round_half_even(x_i * qmax / max|x|).
 * Returns max|x| (0 when the row is all zeros, and then q is all zeros). |x_i * inv| <= qmax up to one
 * rounding, which rounds back to qmax, so no clamp is needed; the narrowing saturates regardless.
 */
export function quantizeRow(x: usize, q: usize, k: i32, qmax: f32): f32 {
  let vmax = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= k; i += 4) {
    vmax = f32x4.max(vmax, f32x4.abs(v128.load(x + (<usize>i << 2))));
  }
  let m = max(
    max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)),
    max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)),
  );
  for (; i < k; i++) m = max(m, abs(load<f32>(x + (<usize>i << 2))));

  const inv: f32 = m > 0 ? qmax / m : 0;
  const vinv = f32x4.splat(inv);
  i = 0;
  for (; i + 8 <= k; i += 8) {
    const lo = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x + (<usize>i << 2)), vinv)));
    const hi = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x + (<usize>i << 2), 16), vinv)));
    v128.store(q + (<usize>i << 1), i16x8.narrow_i32x4_s(lo, hi));
  }
  for (; i < k; i++) store<i16>(q + (<usize>i << 1), <i16>(<i32>nearest<f32>(load<f32>(x + (<usize>i << 2)) * inv)));
  return m;
}

/**
 * y[o] = f32(sum_i q[i] * w[o][i]) * (xScale * scale[o]) + bias[o] for o in [0, n), then ReLU if asked.
 * `w` is [n][k] int8 row-major, `q` the int16 activations from quantizeRow, xScale = max|x| / qmax.
 * Four rows per pass share each activation load; more accumulators spill V8's 15 xmm registers.
 */
export function denseRows(q: usize, w: usize, scale: usize, bias: usize, y: usize, k: i32, n: i32, xScale: f32, relu: i32): void {
  const kMain = k & ~15;
  let o = 0;
  for (; o + 4 <= n; o += 4) {
    const r0 = w + <usize>o * <usize>k;
    const r1 = r0 + <usize>k;
    const r2 = r1 + <usize>k;
    const r3 = r2 + <usize>k;
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    for (let i = 0; i < kMain; i += 16) {
      const qa = q + (<usize>i << 1);
      const xl = v128.load(qa);
      const xh = v128.load(qa, 16);
      const w0 = v128.load(r0 + <usize>i);
      const w1 = v128.load(r1 + <usize>i);
      const w2 = v128.load(r2 + <usize>i);
      const w3 = v128.load(r3 + <usize>i);
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), xh)));
      a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), xh)));
      a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w2), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w2), xh)));
      a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w3), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w3), xh)));
    }
    let s0 = horizontalSum(a0);
    let s1 = horizontalSum(a1);
    let s2 = horizontalSum(a2);
    let s3 = horizontalSum(a3);
    for (let i = kMain; i < k; i++) {
      const xi = <i32>load<i16>(q + (<usize>i << 1));
      s0 += xi * <i32>load<i8>(r0 + <usize>i);
      s1 += xi * <i32>load<i8>(r1 + <usize>i);
      s2 += xi * <i32>load<i8>(r2 + <usize>i);
      s3 += xi * <i32>load<i8>(r3 + <usize>i);
    }
    finish(y, scale, bias, o, s0, xScale, relu);
    finish(y, scale, bias, o + 1, s1, xScale, relu);
    finish(y, scale, bias, o + 2, s2, xScale, relu);
    finish(y, scale, bias, o + 3, s3, xScale, relu);
  }
  for (; o < n; o++) {
    const r = w + <usize>o * <usize>k;
    let a = i32x4.splat(0);
    for (let i = 0; i < kMain; i += 16) {
      const qa = q + (<usize>i << 1);
      const wv = v128.load(r + <usize>i);
      a = i32x4.add(a, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(wv), v128.load(qa)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(wv), v128.load(qa, 16))));
    }
    let s = horizontalSum(a);
    for (let i = kMain; i < k; i++) s += <i32>load<i16>(q + (<usize>i << 1)) * <i32>load<i8>(r + <usize>i);
    finish(y, scale, bias, o, s, xScale, relu);
  }
}

// @ts-ignore: decorator
@inline
function horizontalSum(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

// @ts-ignore: decorator
@inline
function finish(y: usize, scale: usize, bias: usize, o: i32, acc: i32, xScale: f32, relu: i32): void {
  const off = <usize>o << 2;
  let v = <f32>acc * (xScale * load<f32>(scale + off)) + load<f32>(bias + off);
  if (relu && v < 0) v = 0;
  store<f32>(y + off, v);
}
