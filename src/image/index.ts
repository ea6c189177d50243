/** The image pipeline: JPEG/PNG/WebP bytes -> the model's input tensor. Wiring only. */
export { jpegRowsToTensor } from "./jpeg-rows";
export {
  type ImagePlan,
  type PreparedImage,
  planHeader,
  planImage,
  planJpegStream,
  pngRowsToTensor,
  prepareImage,
} from "./prepare-image";
export { imageCost, imageWorkingBytes, type ImageCost } from "./cost";
export { ImageError, type ImageErrorCode } from "./errors";
export { sniffImage } from "./sniff";
export { decoderMemoryBytes, decoderMemoryPeakBytes, resetDecoderMemoryPeak } from "./decoder-memory";
