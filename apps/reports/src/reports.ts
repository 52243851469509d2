/**
 * Reports, cached by content: the PDF of an inspection's current state is stored once in the reports bucket under
 * `<prefix><org>/<inspection>/<hash>.pdf`, where the hash covers everything the PDF shows. A request whose state
 * was rendered before is served from the bucket without rendering; any change (a new image, a status, a
 * detection, a title) gives a new hash, hence a new render.
 *
 * Renders are streamed straight into the bucket (memory stays bounded whatever the report's size), then served from
 * it like a cache hit, so both paths answer the very same bytes. Concurrent requests for one report in a process
 * share one render, and at most `maxConcurrentRenders` run at once.
 */
import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { conflict, notFound, type ObjectInfo, type ObjectStore } from "@ndt/kit";
import { pendingImages, type RenderSettings, type ReportData, reportHash } from "./model.js";
import { renderReport } from "./render.js";
import type { ReportsStore } from "./store.js";

export const PDF_CONTENT_TYPE = "application/pdf";

export interface ReportServiceOptions {
  store: ReportsStore;
  /** Uploaded images, read by the object keys files recorded. */
  uploads: ObjectStore;
  /** Where rendered reports are cached. */
  reports: ObjectStore;
  /** Key prefix of cached reports, ending in "/". */
  prefix: string;
  settings: RenderSettings;
  /** @default 2 */
  maxConcurrentRenders?: number;
  /** Called once per report answered: rendered for the request, or served as it was cached. */
  onServed?: (cache: "hit" | "miss") => void;
  /** Called after each render stored its PDF, with how long rendering and storing took. */
  onRendered?: (seconds: number, images: number) => void;
}

/** What a request needs to answer before touching the bucket (conditional requests stop here). */
export interface ReportRef {
  hash: string;
  key: string;
  inspectionId: string;
}

export interface ReportBody {
  info: ObjectInfo;
  body: Readable;
  /** Served from the bucket as it was, or rendered for this request. */
  cache: "hit" | "miss";
}

/** A counting semaphore: renders past the limit wait for a slot instead of piling images into memory. */
class Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class ReportService {
  /** Reports rendered by this process (metrics and tests: a cache hit does not add one). */
  renders = 0;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly slots: Slots;

  constructor(private readonly opts: ReportServiceOptions) {
    this.slots = new Slots(opts.maxConcurrentRenders ?? 2);
  }

  /**
   * The data and identity of an inspection's report.
   * @throws 404 `not_found` when the inspection does not exist in `org`; 409 `not_ready` while images wait.
   */
  async resolve(org: string, inspectionId: string): Promise<{ ref: ReportRef; data: ReportData }> {
    const data = await this.opts.store.reportData(org, inspectionId);
    if (!data) throw notFound("Inspection not found");
    const pending = pendingImages(data);
    if (pending > 0) {
      throw conflict(
        "not_ready",
        `${pending} image${pending === 1 ? " is" : "s are"} still queued or processing; try again when detection ends`,
      );
    }
    const hash = reportHash(data, this.opts.settings);
    const key = `${this.opts.prefix}${data.inspection.organizationId}/${data.inspection.id}/${hash}.pdf`;
    return { ref: { hash, key, inspectionId: data.inspection.id }, data };
  }

  /** The cached PDF, rendered into the bucket first when it is not there yet. */
  async open(ref: ReportRef, data: ReportData): Promise<ReportBody> {
    const cached = await this.opts.reports.get(ref.key);
    if (cached) {
      this.opts.onServed?.("hit");
      return { ...cached, cache: "hit" };
    }
    await this.renderOnce(ref, data);
    const rendered = await this.opts.reports.get(ref.key);
    if (!rendered) throw new Error(`report ${ref.key} vanished right after it was stored`);
    this.opts.onServed?.("miss");
    return { ...rendered, cache: "miss" };
  }

  private renderOnce(ref: ReportRef, data: ReportData): Promise<void> {
    let pending = this.inFlight.get(ref.key);
    if (!pending) {
      pending = this.slots.run(() => this.render(ref, data)).finally(() => this.inFlight.delete(ref.key));
      this.inFlight.set(ref.key, pending);
    }
    return pending;
  }

  private async render(ref: ReportRef, data: ReportData): Promise<void> {
    const started = performance.now();
    const pdf = renderReport(data, {
      hash: ref.hash,
      settings: this.opts.settings,
      loadImage: async (image) => {
        const object = await this.opts.uploads.get(image.objectKey);
        return object ? buffer(object.body) : null;
      },
    });
    // a failed render aborts the upload: no partial PDF is ever cached under the hash
    await this.opts.reports.put(ref.key, pdf, { contentType: PDF_CONTENT_TYPE });
    this.renders++;
    this.opts.onRendered?.((performance.now() - started) / 1000, data.images.length);
  }
}
