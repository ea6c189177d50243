/**
 * The one in-memory picture format between the decoders and preprocessing: 8-bit samples, rows top to bottom,
 * interleaved channels. Alpha never gets this far (decoders composite it over the manifest's background), so
 * a raster is grey (1 channel) or RGB (3).
 */
export interface Raster {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array; // width * height * channels bytes
}
