/**
 * The preprocessing and input of an ImageNet AlexNet package (torchvision's: resize the shorter side to 256,
 * centre-crop 224, ImageNet mean and std), which the image tests size their decoders and buffers for.
 */
import type { InputShape, Preprocess } from "../../src/package/manifest";

export const imagenetPreprocess: Preprocess = {
  color: "rgb",
  background: [0, 0, 0],
  resize: { shorter_side: 256, filter: "bilinear" },
  crop: { mode: "center", height: 224, width: 224 },
  scale: 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

export const imagenetInput: InputShape = { height: 224, width: 224, channels: 3 };
