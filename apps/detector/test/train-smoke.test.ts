/**
 * CI's smoke training: a tiny generated dataset, one epoch of train.py --smoke, and the exported ONNX loaded and run
 * through the inference core — so the training script and its export cannot rot. Needs Debian's /usr/bin/python3
 * with torch and onnx: without them the test fails under CI and is skipped (with the reason printed) elsewhere.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Detector } from "../src/inference/detector.js";
import { generateDataset } from "../model/dataset/generate.js";
import { packDataset } from "../model/dataset/pack.js";
import { onnxMetadata } from "../src/inference/metadata.js";

const PYTHON = "/usr/bin/python3";
const TRAIN = fileURLToPath(new URL("../model/train.py", import.meta.url));

function torchMissing(): string | undefined {
  const probe = spawnSync(PYTHON, ["-c", "import torch, onnx"], { encoding: "utf8" });
  if (probe.error) return `${PYTHON} not runnable: ${probe.error.message}`;
  if (probe.status !== 0)
    return `${PYTHON} lacks torch/onnx (apt-get install python3-torch python3-onnx): ${probe.stderr.trim().split("\n").pop()}`;
  return undefined;
}

const missing = torchMissing();
if (missing && !process.env.CI) console.log(`skipping smoke training: ${missing}`);

describe.skipIf(missing !== undefined && !process.env.CI)("train.py --smoke", () => {
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    "trains one epoch on a tiny set and exports a §4 ONNX that the inference core runs",
    { timeout: 300_000 },
    async () => {
      expect(missing, "smoke training needs torch under CI").toBeUndefined();
      dir = await mkdtemp(join(tmpdir(), "ndt-smoke-"));
      await generateDataset({ seed: 7, count: 8, out: dir, format: "mixed" });
      await packDataset(dir, 320);
      const out = join(dir, "smoke.onnx");
      const run = spawnSync(
        PYTHON,
        [TRAIN, "--smoke", "--data", dir, "--out", out, "--imgsz", "320", "--crop", "256", "--batch", "4"],
        { encoding: "utf8", timeout: 240_000 },
      );
      expect(run.status, run.stderr.slice(-2000)).toBe(0);
      expect(run.stdout).toMatch(/trained 2 steps/);
      const meta = onnxMetadata(await readFile(out));
      expect(meta.names).toBe("{0: 'porosity', 1: 'crack', 2: 'inclusion'}");
      expect(meta.imgsz).toBe("[320, 320]");
      const det = await Detector.load(out, { confThreshold: 0.001 });
      try {
        expect(det.imgsz).toEqual([320, 320]);
        const img = await readFile(join(dir, "images", "s7-00000.png")).catch(() =>
          readFile(join(dir, "images", "s7-00000.jpg")),
        );
        const [a, b] = await det.detect([img, img]);
        expect(a!.length).toBeGreaterThan(0);
        expect(b).toEqual(a);
      } finally {
        await det.release();
      }
    },
  );
});
