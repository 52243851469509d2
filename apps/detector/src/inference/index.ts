export { type Box, type DecodeOptions, decodeOutput, iou, nms, type RawDetection } from "./decode.js";
export { Detector, type DetectorOptions } from "./detector.js";
export {
  type LetterboxedImage,
  type LetterboxGeometry,
  letterboxGeometry,
  PAD_VALUE,
  toChw,
  unletterboxBox,
} from "./geometry.js";
export { ImageDecodeError, letterboxImage } from "./letterbox.js";
export { describeModel, type ModelDescription, onnxMetadata, parseImgsz, parseNames } from "./metadata.js";
export { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "./bundled.js";
export { InferencePool, type InferencePoolOptions, InferenceThreadError } from "./pool.js";
export {
  type BatchResult,
  type BatchTimings,
  createSession,
  type Detection,
  ModelRunner,
  ProviderError,
  type RunnerOptions,
} from "./runner.js";
