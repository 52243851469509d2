/**
 * The shipped model meets the CONTRACTS.md §5 quality bar on images it has never seen. MODEL.md holds the 300-image
 * figures; to keep the suite's time reasonable on 2 cores this checks 100 fresh images from another unseen seed.
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BUNDLED_MODEL_OPTIONS, BUNDLED_MODEL_PATH } from "../src/inference/bundled.js";
import { Detector } from "../src/inference/detector.js";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { evaluate, formatReport } from "../model/evaluate.js";

const MODEL = BUNDLED_MODEL_PATH;
/** The thresholds stated in MODEL.md. */
const { confThreshold: CONF, iouThreshold: NMS_IOU, agnostic: AGNOSTIC } = BUNDLED_MODEL_OPTIONS;
/** Never used in training (train: 1000) nor in MODEL.md's 300-image evaluation (90210). */
const UNSEEN_SEED = 31337;

describe("bundled defect model (apps/detector/model/defects.onnx)", () => {
  it("exists and describes itself per §4: names, imgsz, [N, 4 + C, A] output", async () => {
    expect(existsSync(MODEL)).toBe(true);
    const det = await Detector.load(MODEL, BUNDLED_MODEL_OPTIONS);
    try {
      expect(det.names).toEqual(["porosity", "crack", "inclusion"]);
      expect(det.imgsz).toEqual([640, 640]);
      const s = generateSample(UNSEEN_SEED, 1000);
      const [dets] = await det.detect([await encodeSample(s, "png")]);
      for (const d of dets!) {
        expect(d.box[0]).toBeGreaterThanOrEqual(0);
        expect(d.box[2]).toBeLessThanOrEqual(s.width);
        expect(d.score).toBeGreaterThanOrEqual(CONF);
        expect(d.score).toBeLessThanOrEqual(1);
      }
    } finally {
      await det.release();
    }
  });

  it(
    "has precision ≥ 0.90 and recall ≥ 0.90 for every class at IoU 0.5 on 100 fresh images",
    { timeout: 600_000 },
    async () => {
      const result = await evaluate({
        model: MODEL,
        seed: UNSEEN_SEED,
        count: 100,
        conf: CONF,
        nmsIou: NMS_IOU,
        agnostic: AGNOSTIC,
      });
      console.log(formatReport(result));
      for (const c of result.classes) {
        expect(c.groundTruth, c.class).toBeGreaterThan(30);
        expect(c.precision, `${c.class} precision`).toBeGreaterThanOrEqual(0.9);
        expect(c.recall, `${c.class} recall`).toBeGreaterThanOrEqual(0.9);
      }
    },
  );
});
