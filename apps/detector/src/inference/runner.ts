/**
 * One onnxruntime-node session for the §4 interface and the work around it that belongs on the same thread: CHW
 * batch assembly from letterboxed images, `session.run`, output decoding with NMS, boxes back to original pixels. The
 * worker threads each own one (src/inference/session.worker.ts); the `Detector` facade wraps one for in-process use.
 *
 * Execution providers are tried in the configured order (`["cuda", "cpu"]`): the first that creates a session wins,
 * and `provider` says which, so the worker can log it at start.
 */
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { type Box, type DecodeOptions, decodeOutput } from "./decode.js";
import { type LetterboxedImage, type LetterboxGeometry, toChw, unletterboxBox } from "./geometry.js";
import { describeModel } from "./metadata.js";

export interface Detection {
  classId: number;
  class: string;
  score: number;
  /** [x1, y1, x2, y2] in the original (EXIF-oriented) image's pixels. */
  box: Box;
}

export interface RunnerOptions {
  /** @default 0.25 */
  confThreshold?: number;
  /** @default 0.5 */
  iouThreshold?: number;
  /** @default 300 */
  maxDetections?: number;
  /** Class-agnostic NMS. @default false */
  agnostic?: boolean;
  /** onnxruntime intra-op threads. @default 1 */
  intraOpThreads?: number;
  /** Tried in order; the first that creates a session is used. @default ["cpu"] */
  executionProviders?: readonly string[];
  /**
   * Let idle intra-op threads spin (ONNX Runtime's default). Off by default: on cores shared with decoding, spinning
   * threads take the CPU the decoder needs and the run gets slower, not faster.
   * @default false
   */
  allowSpinning?: boolean;
}

export interface BatchTimings {
  /** CHW conversion and batch assembly, whole batch. */
  prepareMs: number;
  /** `session.run`, whole batch. */
  inferenceMs: number;
  /** Decoding, NMS and mapping back, whole batch. */
  postprocessMs: number;
}

export interface BatchResult {
  detections: Detection[][];
  timings: BatchTimings;
}

export class ProviderError extends Error {
  override name = "ProviderError";
}

/** Creates a session with the first provider of `providers` that works; returns it with the provider's name. */
export async function createSession(
  model: Uint8Array,
  providers: readonly string[],
  intraOpThreads: number,
  allowSpinning = false,
): Promise<{ session: ort.InferenceSession; provider: string; failures: { provider: string; error: string }[] }> {
  const failures: { provider: string; error: string }[] = [];
  for (const provider of providers) {
    try {
      const session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: intraOpThreads,
        // one graph at a time per session: parallelism comes from intra-op threads and from more sessions
        interOpNumThreads: 1,
        executionMode: "sequential",
        executionProviders: [provider],
        graphOptimizationLevel: "all",
        // The worker's batches vary in size (up to N images or T ms), and a memory pattern is planned per input shape:
        // on a new shape ORT allocates outside the plan, touching fresh pages each time (~1,100 page faults per image
        // at mixed sizes against ~50 without a pattern; a fault costs ~13 µs on this VM). The arena alone reuses the
        // memory across shapes.
        enableMemPattern: false,
        // onnxruntime_session_options_config_keys.h
        extra: { session: { intra_op: { allow_spinning: allowSpinning ? "1" : "0" } } },
      });
      return { session, provider, failures };
    } catch (err) {
      failures.push({ provider, error: err instanceof Error ? err.message : String(err) });
    }
  }
  throw new ProviderError(
    `no execution provider could run the model: ${failures.map((f) => `${f.provider}: ${f.error}`).join("; ")}`,
  );
}

export class ModelRunner {
  readonly names: readonly string[];
  /** [height, width] */
  readonly imgsz: readonly [number, number];
  /** The execution provider the session runs on. */
  readonly provider: string;
  /** Providers tried before `provider` and why they failed. */
  readonly providerFailures: readonly { provider: string; error: string }[];
  readonly #session: ort.InferenceSession;
  readonly #decode: DecodeOptions;
  /**
   * The batch tensor, reused from run to run (one run at a time per runner): a fresh 40 MB array per batch of 8
   * costs more in zeroing, page faults and GC than the CHW conversion itself.
   */
  #scratch = new Float32Array(0);
  #scratchInUse = false;

  private constructor(
    session: ort.InferenceSession,
    described: { names: string[]; imgsz: [number, number] },
    provider: { provider: string; failures: { provider: string; error: string }[] },
    opts: RunnerOptions,
  ) {
    this.#session = session;
    this.names = described.names;
    this.imgsz = described.imgsz;
    this.provider = provider.provider;
    this.providerFailures = provider.failures;
    this.#decode = {
      confThreshold: opts.confThreshold ?? 0.25,
      iouThreshold: opts.iouThreshold ?? 0.5,
      maxDetections: opts.maxDetections ?? 300,
      agnostic: opts.agnostic ?? false,
    };
  }

  static async load(path: string, opts: RunnerOptions = {}): Promise<ModelRunner> {
    const bytes = await readFile(path);
    const created = await createSession(
      bytes,
      opts.executionProviders ?? ["cpu"],
      opts.intraOpThreads ?? 1,
      opts.allowSpinning ?? false,
    );
    const input = created.session.inputMetadata[0];
    const shape = input?.isTensor ? input.shape : undefined;
    const described = await describeModel(path, bytes, shape);
    return new ModelRunner(created.session, described, created, opts);
  }

  /** Elements of one image's CHW tensor. */
  get planeSize(): number {
    return 3 * this.imgsz[0] * this.imgsz[1];
  }

  /** Letterboxed images → detections in original pixels, with where the time went. */
  async runLetterboxed(images: readonly LetterboxedImage[]): Promise<BatchResult> {
    const t0 = performance.now();
    const [h, w] = this.imgsz;
    const plane = this.planeSize;
    const size = images.length * plane;
    // a concurrent caller gets its own tensor: the scratch one is being read by the running session
    const reuse = !this.#scratchInUse;
    if (reuse && this.#scratch.length < size) this.#scratch = new Float32Array(size);
    const batch = reuse ? this.#scratch.subarray(0, size) : new Float32Array(size);
    if (reuse) this.#scratchInUse = true;
    try {
      images.forEach((img, i) => toChw(img.pixels, img.channels, w, h, batch, i * plane));
      const t1 = performance.now();
      const result = await this.runChw(
        batch,
        images.map((img) => img.geometry),
      );
      result.timings.prepareMs = t1 - t0;
      return result;
    } finally {
      if (reuse) this.#scratchInUse = false;
    }
  }

  /** A batch already in CHW (images.length × planeSize floats) → detections in original pixels. */
  async runChw(batch: Float32Array, geometries: readonly LetterboxGeometry[]): Promise<BatchResult> {
    const n = geometries.length;
    if (n === 0) return { detections: [], timings: { prepareMs: 0, inferenceMs: 0, postprocessMs: 0 } };
    if (batch.length !== n * this.planeSize) throw new RangeError("batch tensor size does not match the images");
    const t0 = performance.now();
    const { data, dims } = await this.runTensor(batch, n);
    const t1 = performance.now();
    const raw = decodeOutput(data, dims, this.#decode);
    const detections = raw.map((dets, i) =>
      dets.map((d) => ({
        classId: d.classId,
        class: this.names[d.classId] ?? String(d.classId),
        score: d.score,
        box: unletterboxBox(d.box, geometries[i]!),
      })),
    );
    const t2 = performance.now();
    return { detections, timings: { prepareMs: 0, inferenceMs: t1 - t0, postprocessMs: t2 - t1 } };
  }

  /** Bare `session.run` on a [n, 3, H, W] tensor: the first output's data and dims (the benchmark's baseline). */
  async runTensor(batch: Float32Array, n: number): Promise<{ data: Float32Array; dims: readonly number[] }> {
    const [h, w] = this.imgsz;
    const feeds = { [this.#session.inputNames[0]!]: new ort.Tensor("float32", batch, [n, 3, h, w]) };
    const outputs = await this.#session.run(feeds);
    const out = outputs[this.#session.outputNames[0]!];
    if (!out || !(out.data instanceof Float32Array)) throw new Error("model output is not float32");
    return { data: out.data, dims: out.dims };
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}
