import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateDataset } from "../model/dataset/generate.js";
import { CLASS_NAMES, generateSample, SPEC, type Sample } from "../model/dataset/synth.js";

const SEED = 4242;
const samples: Sample[] = Array.from({ length: 40 }, (_, i) => generateSample(SEED, i));

describe("synthetic dataset generator (CONTRACTS.md §5)", () => {
  it("is deterministic from (seed, index) and differs across seeds", () => {
    const again = generateSample(SEED, 7);
    expect(Buffer.from(again.pixels).equals(Buffer.from(samples[7]!.pixels))).toBe(true);
    expect(again.defects).toEqual(samples[7]!.defects);
    const other = generateSample(SEED + 1, 7);
    expect(Buffer.from(other.pixels).equals(Buffer.from(samples[7]!.pixels))).toBe(false);
  });

  it("draws sizes, levels, band, gradient and noise inside the spec ranges", () => {
    for (const s of samples) {
      expect(s.width).toBeGreaterThanOrEqual(320);
      expect(s.width).toBeLessThanOrEqual(1024);
      expect(s.height).toBeGreaterThanOrEqual(320);
      expect(s.height).toBeLessThanOrEqual(1024);
      expect(s.pixels.length).toBe(s.width * s.height);
      const m = s.meta;
      expect(m.background).toBeGreaterThanOrEqual(90);
      expect(m.background).toBeLessThanOrEqual(170);
      expect(m.band.height / s.height).toBeGreaterThanOrEqual(0.25 - 1 / s.height);
      expect(m.band.height / s.height).toBeLessThanOrEqual(0.45 + 1 / s.height);
      expect(m.band.top).toBeGreaterThanOrEqual(0);
      expect(m.band.top + m.band.height).toBeLessThanOrEqual(s.height);
      expect(Math.abs(m.band.delta)).toBeGreaterThanOrEqual(10);
      expect(Math.abs(m.band.delta)).toBeLessThanOrEqual(35);
      expect(Math.abs(m.gradient.amplitude)).toBeLessThanOrEqual(15);
      expect(m.noiseSigma).toBeGreaterThanOrEqual(3);
      expect(m.noiseSigma).toBeLessThanOrEqual(10);
      expect(s.defects.length).toBeLessThanOrEqual(6);
    }
    // Over 40 images every class and every defect count extreme shows up.
    const counts = new Set(samples.map((s) => s.defects.length));
    expect(counts.has(0) || counts.has(1)).toBe(true);
    expect(Math.max(...counts)).toBeGreaterThanOrEqual(5);
    const classes = new Set(samples.flatMap((s) => s.defects.map((d) => d.cls)));
    expect([...classes].sort()).toEqual([...CLASS_NAMES].sort());
  });

  it("renders the base level (background + band + gradient) and the noise σ it reports", () => {
    for (const i of [0, 3, 11]) {
      const clean = generateSample(SEED, i, { noise: false, keepField: true });
      const noisy = generateSample(SEED, i);
      const { meta, width, height } = clean;
      const field = clean.field!;
      // A pixel mid-band and one far outside it, away from defects: level within the gradient's ±15.
      const inBand = meta.band.top + Math.floor(meta.band.height / 2);
      const outside = meta.band.top > height / 2 ? 2 : height - 3;
      const x = Math.floor(width / 2);
      const free = (y: number): boolean =>
        clean.defects.every((d) => y < d.box[1] - 1 || y > d.box[3] || x < d.box[0] - 1 || x > d.box[2]);
      if (free(inBand))
        expect(Math.abs(field[inBand * width + x]! - meta.background - meta.band.delta)).toBeLessThanOrEqual(15.01);
      if (free(outside)) expect(Math.abs(field[outside * width + x]! - meta.background)).toBeLessThanOrEqual(15.01);
      let sum = 0;
      let sum2 = 0;
      let n = 0;
      for (let k = 0; k < noisy.pixels.length; k++) {
        const v = noisy.pixels[k]!;
        if (v === 0 || v === 255) continue;
        const d = v - clean.pixels[k]!;
        sum += d;
        sum2 += d * d;
        n++;
      }
      const sigma = Math.sqrt(sum2 / n - (sum / n) ** 2);
      // Rounding both images adds ~1/6 level² of variance.
      expect(sigma).toBeGreaterThan(meta.noiseSigma - 0.3);
      expect(sigma).toBeLessThan(Math.sqrt(meta.noiseSigma ** 2 + 0.2) + 0.3);
    }
  });

  it("draws each defect class with the spec's geometry and contrast", () => {
    for (const d of samples.flatMap((s) => s.defects)) {
      const sh = d.shape;
      if (sh.kind === "porosity") {
        expect(sh.radius).toBeGreaterThanOrEqual(3);
        expect(sh.radius).toBeLessThanOrEqual(12);
        // Soft edge ≤ 1 px: the box is the disk's diameter plus at most one pixel each side.
        expect(d.box[2] - d.box[0]).toBeGreaterThanOrEqual(2 * sh.radius - 1);
        expect(d.box[2] - d.box[0]).toBeLessThanOrEqual(2 * sh.radius + 3);
      } else if (sh.kind === "crack") {
        expect(sh.points.length - 1).toBeGreaterThanOrEqual(1);
        expect(sh.points.length - 1).toBeLessThanOrEqual(4);
        let len = 0;
        for (let k = 0; k + 1 < sh.points.length; k++) {
          len += Math.hypot(sh.points[k + 1]![0] - sh.points[k]![0], sh.points[k + 1]![1] - sh.points[k]![1]);
        }
        expect(len).toBeGreaterThanOrEqual(30 - 1e-6);
        expect(len).toBeLessThanOrEqual(220 + 1e-6);
        expect(sh.width).toBeGreaterThanOrEqual(1);
        expect(sh.width).toBeLessThanOrEqual(3);
      } else {
        expect(sh.a).toBeGreaterThanOrEqual(5);
        expect(sh.a).toBeLessThanOrEqual(20);
        expect(sh.b).toBeGreaterThanOrEqual(3);
        expect(sh.b).toBeLessThanOrEqual(12);
      }
      if (d.cls === "inclusion") {
        expect(d.contrast).toBeGreaterThanOrEqual(SPEC.brightContrast[0]);
        expect(d.contrast).toBeLessThanOrEqual(SPEC.brightContrast[1]);
      } else {
        expect(d.contrast).toBeGreaterThanOrEqual(-80);
        expect(d.contrast).toBeLessThanOrEqual(-35);
      }
    }
  });

  it("gives each defect the tight bound of what it drew, inside the image", () => {
    const withDefects = samples.map((s, i) => (s.defects.length > 0 ? i : -1)).filter((i) => i >= 0);
    for (const i of withDefects.slice(0, 5)) {
      const painted = generateSample(SEED, i, { noise: false, keepField: true });
      const bare = generateSample(SEED, i, { noise: false, paintDefects: false, keepField: true });
      const { width, height, defects } = painted;
      expect(defects.length).toBeGreaterThan(0);
      const touched = defects.map(() => ({ x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity }));
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          if (painted.field![y * width + x] === bare.field![y * width + x]) continue;
          const owner = defects.findIndex((d) => x >= d.box[0] && x < d.box[2] && y >= d.box[1] && y < d.box[3]);
          expect(owner, `changed pixel (${x}, ${y}) outside every box`).toBeGreaterThanOrEqual(0);
          const t = touched[owner]!;
          t.x1 = Math.min(t.x1, x);
          t.y1 = Math.min(t.y1, y);
          t.x2 = Math.max(t.x2, x + 1);
          t.y2 = Math.max(t.y2, y + 1);
        }
      }
      defects.forEach((d, k) => {
        const t = touched[k]!;
        expect([t.x1, t.y1, t.x2, t.y2]).toEqual(d.box);
        expect(d.box[0]).toBeGreaterThanOrEqual(0);
        expect(d.box[1]).toBeGreaterThanOrEqual(0);
        expect(d.box[2]).toBeLessThanOrEqual(width);
        expect(d.box[3]).toBeLessThanOrEqual(height);
      });
    }
  });

  it("keeps every pair of defects at least 4 px apart", () => {
    let pairs = 0;
    for (const s of [...samples, ...Array.from({ length: 160 }, (_, i) => generateSample(SEED + 2, i))]) {
      s.defects.forEach((d, k) => {
        for (const o of s.defects.slice(k + 1)) {
          const gapX = Math.max(o.box[0] - d.box[2], d.box[0] - o.box[2]);
          const gapY = Math.max(o.box[1] - d.box[3], d.box[1] - o.box[3]);
          expect(Math.max(gapX, gapY), `${s.name}: ${d.box} vs ${o.box}`).toBeGreaterThanOrEqual(4);
          pairs++;
        }
      });
    }
    expect(pairs).toBeGreaterThan(500);
  });

  it("encodes 8-bit grey PNG and JPEG", async () => {
    const s = samples[3]!;
    const pngBytes = await encodeSample(s, "png");
    const pngMeta = await sharp(pngBytes).metadata();
    expect([pngMeta.format, pngMeta.channels, pngMeta.depth]).toEqual(["png", 1, "uchar"]);
    const png = await sharp(pngBytes).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
    expect(png.info.width).toBe(s.width);
    expect(Buffer.from(s.pixels).equals(png.data)).toBe(true);
    const jpegMeta = await sharp(await encodeSample(s, "jpeg")).metadata();
    expect(jpegMeta.format).toBe("jpeg");
    expect(jpegMeta.channels).toBe(1);
    expect(jpegMeta.depth).toBe("uchar");
  });

  describe("CLI dataset writer", () => {
    let dir = "";
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });
    it("writes images and YOLO labels that normalise the pixel boxes", async () => {
      dir = await mkdtemp(join(tmpdir(), "ndt-ds-"));
      const lines = await generateDataset({ seed: SEED, count: 3, start: 1, out: dir });
      for (const line of lines) {
        const s = generateSample(SEED, Number(line.name.split("-")[1]));
        expect(line.boxes.map((b) => b.box)).toEqual(s.defects.map((d) => d.box));
        const meta = await sharp(join(dir, line.file)).metadata();
        expect([meta.width, meta.height]).toEqual([s.width, s.height]);
        const labels = (await readFile(join(dir, "labels", `${line.name}.txt`), "utf8"))
          .trim()
          .split("\n")
          .filter(Boolean);
        expect(labels).toHaveLength(s.defects.length);
        labels.forEach((l, k) => {
          const [c, cx, cy, w, h] = l.split(" ").map(Number);
          const [x1, y1, x2, y2] = s.defects[k]!.box;
          expect(c).toBe(s.defects[k]!.classId);
          expect(cx! * s.width).toBeCloseTo((x1 + x2) / 2, 2);
          expect(cy! * s.height).toBeCloseTo((y1 + y2) / 2, 2);
          expect(w! * s.width).toBeCloseTo(x2 - x1, 2);
          expect(h! * s.height).toBeCloseTo(y2 - y1, 2);
        });
      }
    });
  });
});
