export { type Box, type DecodeOptions, decodeOutput, iou, nms, type RawDetection } from "./decode.js";
export { type Detection, Detector, type DetectorOptions, type PreparedImage } from "./detector.js";
export {
  ImageDecodeError,
  type LetterboxGeometry,
  letterboxGeometry,
  letterboxImage,
  PAD_VALUE,
  rgbToChw,
  unletterboxBox,
} from "./letterbox.js";
export { describeModel, type ModelDescription, onnxMetadata, parseImgsz, parseNames } from "./metadata.js";
export { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "./bundled.js";
