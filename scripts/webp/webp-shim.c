/*
 * The only entry points of src/image/webp/libwebp-dec.wasm (built by scripts/build-webp-wasm.sh): decode a
 * WebP straight to the size the Worker asks for, with libwebp's rescaler working row by row as the picture
 * is decoded (WebPDecoderConfig.options.use_scaling), so a large lossy photo never exists at full size.
 * Returns the pixels (out_w * out_h * 3 or 4 bytes, malloc'd by libwebp; the caller drops the whole
 * instance afterwards) or 0; webp_last_status() then says why (a VP8StatusCode).
 */
#include <stddef.h>
#include <stdint.h>

#include "src/webp/decode.h"

static int last_status = 0;

int webp_last_status(void) { return last_status; }

uint8_t* webp_decode_scaled(const uint8_t* data, size_t size, int out_w, int out_h, int with_alpha) {
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) {
    last_status = VP8_STATUS_INVALID_PARAM;
    return 0;
  }
  last_status = WebPGetFeatures(data, size, &config.input);
  if (last_status != VP8_STATUS_OK) return 0;
  if (config.input.has_animation) {
    last_status = VP8_STATUS_UNSUPPORTED_FEATURE;
    return 0;
  }
  if (out_w != config.input.width || out_h != config.input.height) {
    config.options.use_scaling = 1;
    config.options.scaled_width = out_w;
    config.options.scaled_height = out_h;
  }
  // Non-premultiplied RGBA: the Worker composites it over the manifest's background as it does PNG's alpha.
  config.output.colorspace = with_alpha ? MODE_RGBA : MODE_RGB;
  last_status = WebPDecode(data, size, &config);
  if (last_status != VP8_STATUS_OK) {
    WebPFreeDecBuffer(&config.output);
    return 0;
  }
  return config.output.u.RGBA.rgba;
}
