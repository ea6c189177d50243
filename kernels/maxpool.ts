/**
 * Max pooling over f32 NHWC (AssemblyScript, WebAssembly SIMD), no padding, floor mode (PyTorch
 * `MaxPool2d(ceil_mode=False)`), four channels per v128. Built into the same module as the int8
 * convolution (kernels/conv-int8.ts) so activations never leave that module's memory.
 */
export function maxpool(x: usize, out: usize, w: i32, c: i32, window: i32, stride: i32, ho: i32, wo: i32): void {
  const rowBytes = <usize>(w * c) << 2;
  for (let oy = 0; oy < ho; oy++) {
    for (let ox = 0; ox < wo; ox++) {
      const corner = x + <usize>(oy * stride) * rowBytes + (<usize>(ox * stride * c) << 2);
      const to = out + (<usize>((oy * wo + ox) * c) << 2);
      let ci = 0;
      for (; ci + 4 <= c; ci += 4) {
        let m = v128.load(corner + (<usize>ci << 2));
        for (let ky = 0; ky < window; ky++) {
          const row = corner + <usize>ky * rowBytes + (<usize>ci << 2);
          for (let kx = 0; kx < window; kx++) m = f32x4.max(m, v128.load(row + (<usize>(kx * c) << 2)));
        }
        v128.store(to + (<usize>ci << 2), m);
      }
      for (; ci < c; ci++) {
        let m = load<f32>(corner + (<usize>ci << 2));
        for (let ky = 0; ky < window; ky++) {
          for (let kx = 0; kx < window; kx++) m = max(m, load<f32>(corner + <usize>ky * rowBytes + (<usize>(kx * c + ci) << 2)));
        }
        store<f32>(to + (<usize>ci << 2), m);
      }
    }
  }
}
