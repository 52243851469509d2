/**
 * The in-process inference facade (evaluation, tests, tools): decode + letterbox with sharp, then one `ModelRunner`
 * runs what it is given as one batch. The worker does the same across threads (src/inference/pool.ts).
 */
import { type LetterboxGeometry, rgbToChw } from "./geometry.js";
import { letterboxImage } from "./letterbox.js";
import { type Detection, ModelRunner, type RunnerOptions } from "./runner.js";

export type { Detection } from "./runner.js";

export interface DetectorOptions extends Omit<RunnerOptions, "executionProviders"> {
  /** @default ["cpu"] */
  executionProviders?: string[];
}

export interface PreparedImage {
  tensor: Float32Array;
  geometry: LetterboxGeometry;
}

export class Detector {
  readonly #runner: ModelRunner;

  private constructor(runner: ModelRunner) {
    this.#runner = runner;
  }

  get names(): readonly string[] {
    return this.#runner.names;
  }

  /** [height, width] */
  get imgsz(): readonly [number, number] {
    return this.#runner.imgsz;
  }

  get provider(): string {
    return this.#runner.provider;
  }

  static async load(path: string, opts: DetectorOptions = {}): Promise<Detector> {
    return new Detector(await ModelRunner.load(path, opts));
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
    const plane = this.#runner.planeSize;
    const batch = new Float32Array(images.length * plane);
    images.forEach((img, i) => batch.set(img.tensor, i * plane));
    const { detections } = await this.#runner.runChw(
      batch,
      images.map((img) => img.geometry),
    );
    return detections;
  }

  /** prepare + run for a list of encoded images. */
  async detect(images: readonly Uint8Array[]): Promise<Detection[][]> {
    return this.run(await Promise.all(images.map((b) => this.prepare(b))));
  }

  async release(): Promise<void> {
    await this.#runner.release();
  }
}
