/**
 * Image status changes for the server-sent events, by PostgreSQL LISTEN/NOTIFY.
 *
 * Why not polling: a trigger on `images` notifies at commit, whoever changed the row (this service or the
 * detector), so events arrive at once and the database does no work while nothing changes; one dedicated
 * connection per process serves every open stream (fan-out in memory), where polling would cost a query per
 * stream per interval. A notification carries only ids; the image is read once per change, only when someone
 * listens to that inspection. The connection reconnects with jittered backoff (changes during a gap are not
 * replayed: a client reconnecting reads GET /inspections/:id for the current state).
 */
import { EventEmitter } from "node:events";
import { jitteredDelay, type WarnLogger } from "@ndt/kit";
import pg from "pg";

export interface StatusChange {
  inspectionId: string;
  imageId: string;
}

export class ImageStatusListener {
  private readonly emitter = new EventEmitter();
  private client: pg.Client | undefined;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Where and how to connect (kit's `postgresConnection`): the listener holds its own connection. */
    private readonly connection: pg.ClientConfig,
    private readonly log: WarnLogger,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Resolves once listening (or after the first failure, retrying in the background). */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ ...this.connection, connectionTimeoutMillis: 5_000 });
    client.on("error", (err) => this.log.warn({ err }, "image status listener error"));
    client.on("end", () => {
      if (this.client === client) {
        this.client = undefined;
        this.retry();
      }
    });
    client.on("notification", (msg) => {
      if (!msg.payload) return;
      try {
        const change = JSON.parse(msg.payload) as StatusChange;
        this.emitter.emit(change.inspectionId, change);
      } catch {
        // not ours
      }
    });
    try {
      await client.connect();
      await client.query("LISTEN image_status");
      this.client = client;
      this.failures = 0;
    } catch (err) {
      this.log.warn({ err }, "image status listener could not connect");
      await client.end().catch(() => undefined);
      this.retry();
    }
  }

  private retry() {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, jitteredDelay(this.failures++));
  }

  /** Call `fn` on each status change of the inspection's images; returns the unsubscribe function. */
  subscribe(inspectionId: string, fn: (change: StatusChange) => void): () => void {
    this.emitter.on(inspectionId, fn);
    return () => this.emitter.off(inspectionId, fn);
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
