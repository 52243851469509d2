/**
 * The inference core the detection worker builds on: one onnxruntime-node session, letterbox → run → decode → NMS →
 * boxes in original pixels. Batching and threading policy belong to the caller (the worker); this runs what it is
 * given as one batch.
 */
import { readFile } from "node:fs/promises";
import * as ort from "onnxruntime-node";
import { type Box, decodeOutput } from "./decode.js";
import { type LetterboxGeometry, letterboxImage, rgbToChw, unletterboxBox } from "./letterbox.js";
import { describeModel } from "./metadata.js";

export interface Detection {
  classId: number;
  class: string;
  score: number;
  /** [x1, y1, x2, y2] in the original (EXIF-oriented) image's pixels. */
  box: Box;
}

export interface DetectorOptions {
  /** @default 0.25 */
  confThreshold?: number;
  /** @default 0.5 */
  iouThreshold?: number;
  /** @default 300 */
  maxDetections?: number;
  /** Class-agnostic NMS. @default false */
  agnostic?: boolean;
  /** onnxruntime intra-op threads. @default 1 (the worker runs one session per thread) */
  intraOpThreads?: number;
  /** @default ["cpu"] */
  executionProviders?: string[];
}

export interface PreparedImage {
  tensor: Float32Array;
  geometry: LetterboxGeometry;
}

export class Detector {
  readonly names: readonly string[];
  /** [height, width] */
  readonly imgsz: readonly [number, number];
  readonly #session: ort.InferenceSession;
  readonly #opts: Required<Omit<DetectorOptions, "intraOpThreads" | "executionProviders">>;

  private constructor(session: ort.InferenceSession, names: string[], imgsz: [number, number], opts: DetectorOptions) {
    this.#session = session;
    this.names = names;
    this.imgsz = imgsz;
    this.#opts = {
      confThreshold: opts.confThreshold ?? 0.25,
      iouThreshold: opts.iouThreshold ?? 0.5,
      maxDetections: opts.maxDetections ?? 300,
      agnostic: opts.agnostic ?? false,
    };
  }

  static async load(path: string, opts: DetectorOptions = {}): Promise<Detector> {
    const bytes = await readFile(path);
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: opts.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      executionProviders: opts.executionProviders ?? ["cpu"],
      graphOptimizationLevel: "all",
    });
    const input = session.inputMetadata[0];
    const shape = input?.isTensor ? input.shape : undefined;
    const { names, imgsz } = await describeModel(path, bytes, shape);
    return new Detector(session, names, imgsz, opts);
  }

  /** Decodes and letterboxes one image (PNG/JPEG bytes) to this model's input. */
  async prepare(bytes: Uint8Array): Promise<PreparedImage> {
    const [h, w] = this.imgsz;
    const { rgb, geometry } = await letterboxImage(bytes, w, h);
    return { tensor: rgbToChw(rgb, w, h), geometry };
  }

  /** Runs prepared images as one batch; returns detections per image in original pixels. */
  async run(images: readonly PreparedImage[]): Promise<Detection[][]> {
    if (images.length === 0) return [];
    const [h, w] = this.imgsz;
    const plane = 3 * h * w;
    const batch = new Float32Array(images.length * plane);
    images.forEach((img, i) => batch.set(img.tensor, i * plane));
    const feeds = { [this.#session.inputNames[0]!]: new ort.Tensor("float32", batch, [images.length, 3, h, w]) };
    const outputs = await this.#session.run(feeds);
    const out = outputs[this.#session.outputNames[0]!];
    if (!out || !(out.data instanceof Float32Array)) throw new Error("model output is not float32");
    const raw = decodeOutput(out.data, out.dims, this.#opts);
    return raw.map((dets, i) =>
      dets.map((d) => ({
        classId: d.classId,
        class: this.names[d.classId] ?? String(d.classId),
        score: d.score,
        box: unletterboxBox(d.box, images[i]!.geometry),
      })),
    );
  }

  /** prepare + run for a list of encoded images. */
  async detect(images: readonly Uint8Array[]): Promise<Detection[][]> {
    return this.run(await Promise.all(images.map((b) => this.prepare(b))));
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}
