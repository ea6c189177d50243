/** The image pipeline: JPEG/PNG bytes -> the model's input tensor. Wiring only. */
export { prepareImage, type PreparedImage } from "./prepare-image";
export { ImageError, type ImageErrorCode } from "./errors";
export { decoderMemoryBytes, decoderMemoryPeakBytes, resetDecoderMemoryPeak } from "./decoder-memory";
