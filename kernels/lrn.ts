/**
 * Local response normalisation over channels, NHWC f32, in place (AssemblyScript, WebAssembly SIMD).
 * Krizhevsky et al. 2012, section 3.3: b_c = a_c / (k + alpha * sum_{|c'-c| <= r} a_c'^2)^beta.
 *
 * tfjs-backend-wasm's LRN kernel took ~12% of an AlexNet forward pass (measured); this one vectorises
 * the window sum over channels and, for the paper's beta = 0.75, replaces pow() by two square roots.
 * The module allocates nothing: the caller passes byte offsets of memory it laid out.
 */

/**
 * `x`: pixels * channels f32 values, normalised in place. `squares`: scratch of channels + 2 * radius + 4
 * f32, whose first and last `radius` entries the function zeroes (the window's padding).
 */
export function lrn(x: usize, pixels: i32, channels: i32, radius: i32, k: f32, alpha: f32, beta: f32, squares: usize): void {
  for (let i = 0; i < radius; i++) {
    store<f32>(squares + (<usize>i << 2), 0);
    store<f32>(squares + (<usize>(radius + channels + i) << 2), 0);
  }
  const center = squares + (<usize>radius << 2);
  const vk = f32x4.splat(k);
  const valpha = f32x4.splat(alpha);
  const threeQuarters = beta == 0.75;
  for (let p = 0; p < pixels; p++) {
    const row = x + ((<usize>p * <usize>channels) << 2);
    let c = 0;
    for (; c + 4 <= channels; c += 4) {
      const v = v128.load(row + (<usize>c << 2));
      v128.store(center + (<usize>c << 2), f32x4.mul(v, v));
    }
    for (; c < channels; c++) {
      const v = load<f32>(row + (<usize>c << 2));
      store<f32>(center + (<usize>c << 2), v * v);
    }
    c = 0;
    for (; c + 4 <= channels; c += 4) {
      // The window of channel c spans squares[c .. c + 2r] (padded indices).
      let sum = v128.load(squares + (<usize>c << 2));
      for (let j = 1; j <= 2 * radius; j++) sum = f32x4.add(sum, v128.load(squares + (<usize>(c + j) << 2)));
      const base = f32x4.add(vk, f32x4.mul(valpha, sum));
      const at = row + (<usize>c << 2);
      if (threeQuarters) {
        const root = f32x4.sqrt(base);
        v128.store(at, f32x4.div(v128.load(at), f32x4.mul(root, f32x4.sqrt(root))));
      } else {
        const a = f32x4.extract_lane(base, 0);
        const b = f32x4.extract_lane(base, 1);
        const d = f32x4.extract_lane(base, 2);
        const e = f32x4.extract_lane(base, 3);
        store<f32>(at, load<f32>(at) / Mathf.pow(a, beta));
        store<f32>(at + 4, load<f32>(at + 4) / Mathf.pow(b, beta));
        store<f32>(at + 8, load<f32>(at + 8) / Mathf.pow(d, beta));
        store<f32>(at + 12, load<f32>(at + 12) / Mathf.pow(e, beta));
      }
    }
    for (; c < channels; c++) {
      let sum: f32 = 0;
      for (let j = 0; j <= 2 * radius; j++) sum += load<f32>(squares + (<usize>(c + j) << 2));
      const at = row + (<usize>c << 2);
      store<f32>(at, load<f32>(at) / Mathf.pow(k + alpha * sum, beta));
    }
  }
}
