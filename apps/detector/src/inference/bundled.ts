/**
 * The bundled defect model and the post-processing its card (model/MODEL.md) was measured with. The worker uses
 * these as defaults; a swapped-in model brings its own thresholds through configuration.
 */
import type { DetectorOptions } from "./detector.js";

export { BUNDLED_MODEL_PATH } from "../paths.js";

export const BUNDLED_MODEL_OPTIONS = {
  confThreshold: 0.4,
  iouThreshold: 0.3,
  agnostic: true,
} as const satisfies DetectorOptions;
