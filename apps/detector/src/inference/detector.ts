/**
 * The in-process inference facade (evaluation, tests, tools): decode + letterbox with sharp, then one `ModelRunner`
 * runs what it is given as one batch. The worker does the same across threads (src/inference/pool.ts).
 */
import { letterboxImage } from "./letterbox.js";
import { type Detection, ModelRunner, type RunnerOptions } from "./runner.js";

export type { Detection } from "./runner.js";

export interface DetectorOptions extends Omit<RunnerOptions, "executionProviders"> {
  /** @default ["cpu"] */
  executionProviders?: string[];
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

  /** Decodes and letterboxes each image (PNG/JPEG bytes), runs them as one batch: detections in original pixels. */
  async detect(images: readonly Uint8Array[]): Promise<Detection[][]> {
    if (images.length === 0) return [];
    const [h, w] = this.imgsz;
    const letterboxed = await Promise.all(images.map((bytes) => letterboxImage(bytes, w, h)));
    return (await this.#runner.runLetterboxed(letterboxed)).detections;
  }

  async release(): Promise<void> {
    await this.#runner.release();
  }
}
