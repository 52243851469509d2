/** The worker's configuration: defaults that run the bundled model as its card measured it, and clear errors. */
import { ConfigError } from "@ndt/kit";
import { describe, expect, it } from "vitest";
import { modelSettings, providersOf } from "../src/app.js";
import { loadDetectorConfig } from "../src/config.js";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";

const base = { DATABASE_URL: "postgres://u@127.0.0.1:5432/db" };

describe("detector config", () => {
  it("defaults: port 9090, CUDA then CPU, 2 sessions × 1 intra-op thread, batches of 8 or 10 ms, 5 deliveries", () => {
    const c = loadDetectorConfig(base);
    expect(c).toMatchObject({
      PORT: 9090,
      ORT_PROVIDERS: "cuda,cpu",
      INFERENCE_THREADS: 2,
      INFERENCE_STOP_TIMEOUT_MS: 5_000,
      ORT_INTRA_OP_THREADS: 1,
      BATCH_MAX: 8,
      BATCH_WAIT_MS: 10,
      DETECTIONS_QUEUE: "detections",
      DETECTIONS_DELIVERY_LIMIT: 5,
    });
    expect(providersOf(loadDetectorConfig({ ...base, ORT_PROVIDERS: " cuda , cpu,cpu" }))).toEqual(["cuda", "cpu"]);
  });

  it("runs the bundled model with its card's post-processing (conf 0.40, class-agnostic NMS IoU 0.30)", () => {
    expect(modelSettings(loadDetectorConfig(base))).toEqual({
      modelPath: BUNDLED_MODEL_PATH,
      confThreshold: BUNDLED_MODEL_OPTIONS.confThreshold,
      iouThreshold: BUNDLED_MODEL_OPTIONS.iouThreshold,
      agnostic: true,
      maxDetections: 300,
    });
    expect(BUNDLED_MODEL_OPTIONS).toEqual({ confThreshold: 0.4, iouThreshold: 0.3, agnostic: true });
  });

  it("a swapped-in model gets generic defaults unless its thresholds are configured", () => {
    const other = modelSettings(loadDetectorConfig({ ...base, MODEL_PATH: "/models/model.onnx" }));
    expect(other).toMatchObject({
      modelPath: "/models/model.onnx",
      confThreshold: 0.25,
      iouThreshold: 0.45,
      agnostic: false,
    });
    const tuned = modelSettings(
      loadDetectorConfig({
        ...base,
        MODEL_PATH: "/m.onnx",
        CONF_THRESHOLD: "0.5",
        NMS_IOU: "0.6",
        NMS_AGNOSTIC: "true",
      }),
    );
    expect(tuned).toMatchObject({ confThreshold: 0.5, iouThreshold: 0.6, agnostic: true });
  });

  it("names every bad variable at once", () => {
    try {
      loadDetectorConfig({ ORT_PROVIDERS: "tensorrt", BATCH_MAX: "0", MODEL_SHA256: "abc" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const names = (err as ConfigError).problems.map((p) => p.variable).sort();
      expect(names).toEqual(["BATCH_MAX", "DATABASE_URL", "MODEL_SHA256", "ORT_PROVIDERS"]);
    }
  });
});
