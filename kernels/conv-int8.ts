/**
 * int8 convolution for WebAssembly SIMD (AssemblyScript), built twice from this one source by
 * `npm run build:wasm`: with `--enable relaxed-simd` (ASC_FEATURE_RELAXED_SIMD) the inner product is
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s`, otherwise SIMD128's `i32x4.dot_i16x8_s`. Both compute the same
 * exact int32 sums: activations are 7-bit (0..127), the range in which the relaxed instruction's result is
 * defined on every CPU (WebAssembly relaxed SIMD spec, "relaxed dot product"), and weights are -127..127.
 *
 * The relaxed build has two inner products, picked per runtime by `relaxedDotProbe` (src/engine/feature-kernels.ts):
 * - "fused": `i32x4.relaxed_dot_i8x16_i7x16_add_s`, one VNNI instruction (vpdpbusd) where V8 has AVX-VNNI;
 * - "madd": `i16x8.relaxed_dot_i8x16_i7x16_s` (pmaddubsw), then `i32x4.dot_i16x8_s` with ones (pmaddwd) and an
 *   add. On x86 without AVX-VNNI V8 lowers the fused op to the same three instructions plus two more that
 *   rebuild the ones vector on every use; here the ones live in a register. Its pairs cannot overflow int16:
 *   2 x 127 x 127 = 32258.
 *
 * No im2col: the layer's float input is quantized once into a zero-padded NHWC buffer, one plane per
 * group with channels rounded up to 4, so the taps of one kernel row (kx, c) are contiguous bytes. Weights
 * are packed so one v128 holds 4 output channels x 4 taps; a tile is 3 output pixels x 8 channels (six
 * accumulators: V8 has 15 usable xmm registers and spills beyond that). The epilogue (zero-point
 * correction, scale, bias, ReLU, running max|y| for the next layer's quantization) is fused.
 * The arithmetic is specified in docs/model-package.md ("The served arithmetic"); the exporter simulates
 * exactly this. The module allocates nothing: the JS side lays out memory and passes byte offsets.
 */

/** Bytes per activation in the quantized buffer: u8 for the relaxed dot, i16 for dot_i16x8_s. */
export function activationBytes(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 2;
}

/**
 * Lane 0 of `i32x4.relaxed_dot_i8x16_i7x16_add_s(splat(a), splat(b), 0)`, for operands outside the range
 * where its result is defined: the value tells how this runtime lowers it. With a = 127, b = 255: 129540
 * from a 32-bit dot (VNNI), 65534 from pmaddubsw's saturating 16-bit pairs (x86 without VNNI), -508 where b
 * is taken as signed (ARM). Operands are parameters so that the compiler cannot fold it.
 */
export function relaxedDotProbe(a: i32, b: i32): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return 0;
  return i32x4.extract_lane(i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.splat(<i8>a), i8x16.splat(<i8>b), i32x4.splat(0)), 0);
}

/** max_i |x_i| over n f32 values. */
export function maxAbs(x: usize, n: i32): f32 {
  let vmax = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) vmax = f32x4.max(vmax, f32x4.abs(v128.load(x + (<usize>i << 2))));
  let m = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  for (; i < n; i++) m = max(m, abs(load<f32>(x + (<usize>i << 2))));
  return m;
}

/** min(0, min_i x_i) over n f32 values: the low end of a signed input's range (min-max codes). */
export function minValue(x: usize, n: i32): f32 {
  let vmin = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) vmin = f32x4.min(vmin, v128.load(x + (<usize>i << 2)));
  let m = min(min(f32x4.extract_lane(vmin, 0), f32x4.extract_lane(vmin, 1)), min(f32x4.extract_lane(vmin, 2), f32x4.extract_lane(vmin, 3)));
  for (; i < n; i++) m = min(m, load<f32>(x + (<usize>i << 2)));
  return m;
}

/** max(0, max_i x_i) over n f32 values: the high end of a signed input's range. */
export function maxValue(x: usize, n: i32): f32 {
  let vmax = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) vmax = f32x4.max(vmax, v128.load(x + (<usize>i << 2)));
  let m = max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  for (; i < n; i++) m = max(m, load<f32>(x + (<usize>i << 2)));
  return m;
}

/**
 * Quantizes f32 NHWC [h][w][c] into `groups` planes [h + 2 pad][w + 2 pad][cg4] at `dst`:
 * q = clamp(round_half_even(x * inv), lo, hi) + zp, with lo + zp >= 0 and hi + zp <= 127 (the JS side
 * picks them: src/engine/input-code.ts). Padding pixels and padding channels hold zp, which the
 * epilogue's zero-point correction turns into 0.
 */
export function quantizeInput(x: usize, dst: usize, h: i32, w: i32, c: i32, groups: i32, cg4: i32, pad: i32, inv: f32, lo: i32, hi: i32, zp: i32): void {
  const cg = c / groups;
  const wp = w + 2 * pad;
  const plane = <usize>(h + 2 * pad) * <usize>wp * <usize>cg4;
  const total = plane * <usize>groups;
  if (ASC_FEATURE_RELAXED_SIMD) {
    memory.fill(dst, <u8>zp, total);
  } else {
    const vzp = i16x8.splat(<i16>zp);
    let i: usize = 0;
    for (; i + 8 <= total; i += 8) v128.store(dst + (i << 1), vzp);
    for (; i < total; i++) store<i16>(dst + (i << 1), <i16>zp);
  }
  const vinv = f32x4.splat(inv);
  const vlo = i32x4.splat(lo);
  const vhi = i32x4.splat(hi);
  const vzp = i32x4.splat(zp);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      const from = x + ((<usize>(y * w + xx) * <usize>c) << 2);
      const pixel = <usize>((y + pad) * wp + xx + pad) * <usize>cg4;
      for (let g = 0; g < groups; g++) {
        const src = from + (<usize>(g * cg) << 2);
        const to = <usize>g * plane + pixel;
        let ci = 0;
        for (; ci + 4 <= cg; ci += 4) {
          let q = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(src + (<usize>ci << 2)), vinv)));
          q = i32x4.add(i32x4.min_s(i32x4.max_s(q, vlo), vhi), vzp);
          const q16 = i16x8.narrow_i32x4_s(q, q);
          if (ASC_FEATURE_RELAXED_SIMD) {
            v128.store32_lane(dst + to + <usize>ci, i8x16.narrow_i16x8_u(q16, q16), 0);
          } else {
            v128.store64_lane(dst + ((to + <usize>ci) << 1), q16, 0);
          }
        }
        for (; ci < cg; ci++) {
          const q = min(max(<i32>nearest<f32>(load<f32>(src + (<usize>ci << 2)) * inv), lo), hi) + zp;
          if (ASC_FEATURE_RELAXED_SIMD) store<u8>(dst + to + <usize>ci, <u8>q);
          else store<i16>(dst + ((to + <usize>ci) << 1), <i16>q);
        }
      }
    }
  }
}

/**
 * Packs int8 HWIO weights [k][k][cg][f] into blocks of 8 output channels per group, padded with zeros to
 * `fpad` channels per group and `cg4` input channels, and writes each output channel's weight sum (the
 * zero-point correction) as i32 [groups][fpad] at `wsum`. Layout of one block: for each 4 taps (ky, kx,
 * c4 in order), two v128 of 4 channels each; within one, relaxed SIMD wants channel-major runs of 4 taps,
 * dot_i16x8_s wants pairs of taps (t0 t1 for the 4 channels, then t2 t3).
 */
export function packWeights(src: usize, dst: usize, wsum: usize, k: i32, cg: i32, cg4: i32, f: i32, groups: i32, fpad: i32): void {
  const fg = f / groups;
  const blocks = fpad >> 3;
  const taps = k * k * cg4;
  const blockBytes = <usize>taps * 8;
  for (let g = 0; g < groups; g++) {
    for (let b = 0; b < blocks; b++) {
      const base = dst + <usize>(g * blocks + b) * blockBytes;
      for (let t = 0; t < taps; t++) {
        const kk = t / cg4;
        const ci = t % cg4;
        const quad = <usize>(t >> 2) * 32;
        const j = t & 3;
        for (let cc = 0; cc < 8; cc++) {
          const o = b * 8 + cc;
          const v: i32 = ci < cg && o < fg ? <i32>load<i8>(src + <usize>(kk * cg + ci) * <usize>f + <usize>(g * fg + o)) : 0;
          const half = <usize>(cc >> 2) * 16;
          const lane = cc & 3;
          const off = ASC_FEATURE_RELAXED_SIMD ? lane * 4 + j : (j >> 1) * 8 + lane * 2 + (j & 1);
          store<i8>(base + quad + half + <usize>off, <i8>v);
          const at = wsum + (<usize>(g * fpad + o) << 2);
          store<i32>(at, load<i32>(at) + v);
        }
      }
    }
  }
}

/**
 * One group of one convolution: `src` its quantized plane, `wpk` its packed blocks, `wsum`, `scale`,
 * `bias` its fpad-long rows; writes f32 NHWC outputs at `dst` (already offset to the group's first
 * channel; `fOut` channels per pixel). y = f32(acc - zp * wsum) * (xScale * scale) + bias, then ReLU.
 * Returns max|y| over what it wrote.
 */
export function convGroup(src: usize, wpk: usize, wsum: usize, scale: usize, bias: usize, dst: usize, ho: i32, wo: i32, wp: i32, cg4: i32, k: i32, stride: i32, fg: i32, fpad: i32, fOut: i32, xScale: f32, zp: i32, relu: i32, madd: i32, one: i32): f32 {
  // `one` is 1, passed in: a constant splat would be rebuilt by V8 before every use in the loop
  const ones = i16x8.splat(<i16>one);
  if (ASC_FEATURE_RELAXED_SIMD && madd) return convGroupWith(true, ones, src, wpk, wsum, scale, bias, dst, ho, wo, wp, cg4, k, stride, fg, fpad, fOut, xScale, zp, relu);
  return convGroupWith(false, ones, src, wpk, wsum, scale, bias, dst, ho, wo, wp, cg4, k, stride, fg, fpad, fOut, xScale, zp, relu);
}

/** The relaxed build's inner product, 4 taps x 4 channels into `acc` (see the header for the two forms). */
// @ts-ignore: decorator
@inline
function dot(w: v128, x: v128, acc: v128, madd: bool, ones: v128): v128 {
  if (madd) return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(w, x), ones));
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(w, x, acc);
}

// @ts-ignore: decorator
@inline
function convGroupWith(madd: bool, ones: v128, src: usize, wpk: usize, wsum: usize, scale: usize, bias: usize, dst: usize, ho: i32, wo: i32, wp: i32, cg4: i32, k: i32, stride: i32, fg: i32, fpad: i32, fOut: i32, xScale: f32, zp: i32, relu: i32): f32 {
  const act: usize = ASC_FEATURE_RELAXED_SIMD ? 1 : 2;
  const blocks = fpad >> 3;
  const rowTaps = k * cg4;
  const blockBytes = <usize>(k * rowTaps) * 8;
  const pixStep = <usize>(stride * cg4) * act;
  const rowBytes = <usize>(wp * cg4) * act;
  const vx = f32x4.splat(xScale);
  const vzp = i32x4.splat(zp);
  let vmax = f32x4.splat(0);
  for (let oy = 0; oy < ho; oy++) {
    const line = src + <usize>(oy * stride) * rowBytes;
    let ox = 0;
    for (; ox + 3 <= wo; ox += 3) {
      const r0 = line + <usize>ox * pixStep;
      const out = dst + (<usize>(oy * wo + ox) * <usize>fOut << 2);
      for (let b = 0; b < blocks; b++) {
        let wq = wpk + <usize>b * blockBytes;
        let a00 = i32x4.splat(0), a01 = i32x4.splat(0), a10 = i32x4.splat(0), a11 = i32x4.splat(0), a20 = i32x4.splat(0), a21 = i32x4.splat(0);
        for (let ky = 0; ky < k; ky++) {
          const row = r0 + <usize>ky * rowBytes;
          for (let t = 0; t < rowTaps; t += 4) {
            const w0 = v128.load(wq);
            const w1 = v128.load(wq, 16);
            wq += 32;
            const ra = row + <usize>t * act;
            if (ASC_FEATURE_RELAXED_SIMD) {
              const x0 = v128.load32_splat(ra);
              const x1 = v128.load32_splat(ra + pixStep);
              const x2 = v128.load32_splat(ra + 2 * pixStep);
              a00 = dot(w0, x0, a00, madd, ones);
              a01 = dot(w1, x0, a01, madd, ones);
              a10 = dot(w0, x1, a10, madd, ones);
              a11 = dot(w1, x1, a11, madd, ones);
              a20 = dot(w0, x2, a20, madd, ones);
              a21 = dot(w1, x2, a21, madd, ones);
            } else {
              const l0 = i16x8.extend_low_i8x16_s(w0);
              const h0 = i16x8.extend_high_i8x16_s(w0);
              const l1 = i16x8.extend_low_i8x16_s(w1);
              const h1 = i16x8.extend_high_i8x16_s(w1);
              let lo = v128.load32_splat(ra);
              let hi = v128.load32_splat(ra, 4);
              a00 = i32x4.add(a00, i32x4.add(i32x4.dot_i16x8_s(l0, lo), i32x4.dot_i16x8_s(h0, hi)));
              a01 = i32x4.add(a01, i32x4.add(i32x4.dot_i16x8_s(l1, lo), i32x4.dot_i16x8_s(h1, hi)));
              lo = v128.load32_splat(ra + pixStep);
              hi = v128.load32_splat(ra + pixStep, 4);
              a10 = i32x4.add(a10, i32x4.add(i32x4.dot_i16x8_s(l0, lo), i32x4.dot_i16x8_s(h0, hi)));
              a11 = i32x4.add(a11, i32x4.add(i32x4.dot_i16x8_s(l1, lo), i32x4.dot_i16x8_s(h1, hi)));
              lo = v128.load32_splat(ra + 2 * pixStep);
              hi = v128.load32_splat(ra + 2 * pixStep, 4);
              a20 = i32x4.add(a20, i32x4.add(i32x4.dot_i16x8_s(l0, lo), i32x4.dot_i16x8_s(h0, hi)));
              a21 = i32x4.add(a21, i32x4.add(i32x4.dot_i16x8_s(l1, lo), i32x4.dot_i16x8_s(h1, hi)));
            }
          }
        }
        const c = b * 8;
        const pixelBytes = <usize>fOut << 2;
        vmax = f32x4.max(vmax, finish(a00, c, out, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a01, c + 4, out, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a10, c, out + pixelBytes, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a11, c + 4, out + pixelBytes, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a20, c, out + 2 * pixelBytes, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a21, c + 4, out + 2 * pixelBytes, wsum, scale, bias, vx, vzp, relu, fg));
      }
    }
    for (; ox < wo; ox++) {
      const r0 = line + <usize>ox * pixStep;
      const out = dst + (<usize>(oy * wo + ox) * <usize>fOut << 2);
      for (let b = 0; b < blocks; b++) {
        let wq = wpk + <usize>b * blockBytes;
        let a00 = i32x4.splat(0), a01 = i32x4.splat(0);
        for (let ky = 0; ky < k; ky++) {
          const row = r0 + <usize>ky * rowBytes;
          for (let t = 0; t < rowTaps; t += 4) {
            const w0 = v128.load(wq);
            const w1 = v128.load(wq, 16);
            wq += 32;
            const ra = row + <usize>t * act;
            if (ASC_FEATURE_RELAXED_SIMD) {
              const x0 = v128.load32_splat(ra);
              a00 = dot(w0, x0, a00, madd, ones);
              a01 = dot(w1, x0, a01, madd, ones);
            } else {
              const lo = v128.load32_splat(ra);
              const hi = v128.load32_splat(ra, 4);
              a00 = i32x4.add(a00, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), lo), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), hi)));
              a01 = i32x4.add(a01, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), lo), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), hi)));
            }
          }
        }
        const c = b * 8;
        vmax = f32x4.max(vmax, finish(a00, c, out, wsum, scale, bias, vx, vzp, relu, fg));
        vmax = f32x4.max(vmax, finish(a01, c + 4, out, wsum, scale, bias, vx, vzp, relu, fg));
      }
    }
  }
  return max(max(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
}

/**
 * The fused epilogue for 4 channels of one pixel; stores only channels below fg (the padded ones have
 * zero weights, scale and bias, so their y is 0 and cannot raise the max). Returns |y|.
 */
// @ts-ignore: decorator
@inline
function finish(acc: v128, c: i32, out: usize, wsum: usize, scale: usize, bias: usize, vx: v128, vzp: v128, relu: i32, fg: i32): v128 {
  const off = <usize>c << 2;
  const exact = i32x4.sub(acc, i32x4.mul(v128.load(wsum + off), vzp));
  let y = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(exact), f32x4.mul(vx, v128.load(scale + off))), v128.load(bias + off));
  if (relu) y = f32x4.max(y, f32x4.splat(0));
  const at = out + off;
  const n = fg - c;
  if (n >= 4) {
    v128.store(at, y);
  } else {
    if (n > 0) store<f32>(at, f32x4.extract_lane(y, 0));
    if (n > 1) store<f32>(at, f32x4.extract_lane(y, 1), 4);
    if (n > 2) store<f32>(at, f32x4.extract_lane(y, 2), 8);
  }
  return f32x4.abs(y);
}
