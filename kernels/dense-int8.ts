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

/**
 * denseRows for four activation rows at once: y_b[o] for b in 0..3, rows `qStride` int16 apart in `q`,
 * outputs `yStride` f32 apart in `y`, xScales four f32 at `xScales`. Two weight rows per pass, each loaded
 * and widened once for all four inputs: at batch 1 the layer is bound by reading its weights (fc6 of
 * AlexNet-224 is 37.7 MB a pass), so sharing each load among four images is the whole gain. Eight
 * accumulators + four widened weight vectors + two activation vectors fit V8's 15 xmm registers.
 * The sums are the same integers as denseRows', so the outputs are identical bit for bit.
 */
export function denseRows4(q: usize, qStride: i32, w: usize, scale: usize, bias: usize, y: usize, yStride: i32, k: i32, n: i32, xScales: usize, relu: i32): void {
  const kMain = k & ~15;
  const qs = <usize>qStride << 1;
  const ys = <usize>yStride << 2;
  let o = 0;
  for (; o + 2 <= n; o += 2) {
    const r0 = w + <usize>o * <usize>k;
    const r1 = r0 + <usize>k;
    let a00 = i32x4.splat(0), a01 = i32x4.splat(0), a10 = i32x4.splat(0), a11 = i32x4.splat(0);
    let a20 = i32x4.splat(0), a21 = i32x4.splat(0), a30 = i32x4.splat(0), a31 = i32x4.splat(0);
    for (let i = 0; i < kMain; i += 16) {
      const w0 = v128.load(r0 + <usize>i);
      const w1 = v128.load(r1 + <usize>i);
      const l0 = i16x8.extend_low_i8x16_s(w0);
      const h0 = i16x8.extend_high_i8x16_s(w0);
      const l1 = i16x8.extend_low_i8x16_s(w1);
      const h1 = i16x8.extend_high_i8x16_s(w1);
      let qa = q + (<usize>i << 1);
      let xl = v128.load(qa);
      let xh = v128.load(qa, 16);
      a00 = i32x4.add(a00, i32x4.add(i32x4.dot_i16x8_s(l0, xl), i32x4.dot_i16x8_s(h0, xh)));
      a01 = i32x4.add(a01, i32x4.add(i32x4.dot_i16x8_s(l1, xl), i32x4.dot_i16x8_s(h1, xh)));
      qa += qs;
      xl = v128.load(qa);
      xh = v128.load(qa, 16);
      a10 = i32x4.add(a10, i32x4.add(i32x4.dot_i16x8_s(l0, xl), i32x4.dot_i16x8_s(h0, xh)));
      a11 = i32x4.add(a11, i32x4.add(i32x4.dot_i16x8_s(l1, xl), i32x4.dot_i16x8_s(h1, xh)));
      qa += qs;
      xl = v128.load(qa);
      xh = v128.load(qa, 16);
      a20 = i32x4.add(a20, i32x4.add(i32x4.dot_i16x8_s(l0, xl), i32x4.dot_i16x8_s(h0, xh)));
      a21 = i32x4.add(a21, i32x4.add(i32x4.dot_i16x8_s(l1, xl), i32x4.dot_i16x8_s(h1, xh)));
      qa += qs;
      xl = v128.load(qa);
      xh = v128.load(qa, 16);
      a30 = i32x4.add(a30, i32x4.add(i32x4.dot_i16x8_s(l0, xl), i32x4.dot_i16x8_s(h0, xh)));
      a31 = i32x4.add(a31, i32x4.add(i32x4.dot_i16x8_s(l1, xl), i32x4.dot_i16x8_s(h1, xh)));
    }
    let s00 = horizontalSum(a00), s01 = horizontalSum(a01), s10 = horizontalSum(a10), s11 = horizontalSum(a11);
    let s20 = horizontalSum(a20), s21 = horizontalSum(a21), s30 = horizontalSum(a30), s31 = horizontalSum(a31);
    for (let i = kMain; i < k; i++) {
      const v0 = <i32>load<i8>(r0 + <usize>i);
      const v1 = <i32>load<i8>(r1 + <usize>i);
      const qa = q + (<usize>i << 1);
      const x0 = <i32>load<i16>(qa), x1 = <i32>load<i16>(qa + qs), x2 = <i32>load<i16>(qa + 2 * qs), x3 = <i32>load<i16>(qa + 3 * qs);
      s00 += x0 * v0; s01 += x0 * v1; s10 += x1 * v0; s11 += x1 * v1;
      s20 += x2 * v0; s21 += x2 * v1; s30 += x3 * v0; s31 += x3 * v1;
    }
    const x0s = load<f32>(xScales), x1s = load<f32>(xScales, 4), x2s = load<f32>(xScales, 8), x3s = load<f32>(xScales, 12);
    finish(y, scale, bias, o, s00, x0s, relu);
    finish(y, scale, bias, o + 1, s01, x0s, relu);
    finish(y + ys, scale, bias, o, s10, x1s, relu);
    finish(y + ys, scale, bias, o + 1, s11, x1s, relu);
    finish(y + 2 * ys, scale, bias, o, s20, x2s, relu);
    finish(y + 2 * ys, scale, bias, o + 1, s21, x2s, relu);
    finish(y + 3 * ys, scale, bias, o, s30, x3s, relu);
    finish(y + 3 * ys, scale, bias, o + 1, s31, x3s, relu);
  }
  if (o < n) {  // an odd last row: each input alone
    for (let b = 0; b < 4; b++) {
      denseRows(q + <usize>b * qs, w + <usize>o * <usize>k, scale + (<usize>o << 2), bias + (<usize>o << 2), y + <usize>b * ys + (<usize>o << 2), k, 1, load<f32>(xScales + (<usize>b << 2)), relu);
    }
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
