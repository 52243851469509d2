/**
 * The bundled defect model and the post-processing its card (model/MODEL.md) was measured with. The worker uses
 * these as defaults; a swapped-in model brings its own thresholds through configuration.
 */
import { fileURLToPath } from "node:url";
import type { DetectorOptions } from "./detector.js";

export const BUNDLED_MODEL_PATH = fileURLToPath(new URL("../../model/defects.onnx", import.meta.url));

export const BUNDLED_MODEL_OPTIONS = {
  confThreshold: 0.4,
  iouThreshold: 0.3,
  agnostic: true,
} as const satisfies DetectorOptions;
