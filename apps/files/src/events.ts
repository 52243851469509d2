/**
 * Image status changes for the server-sent events, by PostgreSQL LISTEN/NOTIFY.
 *
 * Why not polling: a trigger on `images` notifies at commit, whoever changed the row (this service or the
 * detector), so events arrive at once and the database does no work while nothing changes; one dedicated
 * connection per process serves every open stream (fan-out in memory), where polling would cost a query per
 * stream per interval. A notification carries the ids and the state the change left (an event must show that
 * state, not whatever the row holds when it is read); a `done` image's detections are read, once per change, only
 * when someone listens to that inspection. The connection reconnects with jittered backoff (changes during a gap are not
 * replayed: a client reconnecting reads GET /inspections/:id for the current state).
 */
import { EventEmitter } from "node:events";
import { jitteredDelay, type WarnLogger } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import pg from "pg";
import { IMAGE_STATUSES } from "./schemas.js";

/** A notification as the trigger sends it (apps/files/migrations): ids, and the row's state unless too long. */
const Notification = Type.Object({
  inspectionId: Type.String(),
  imageId: Type.String(),
  status: Type.Optional(Type.Union(IMAGE_STATUSES.map((status) => Type.Literal(status)))),
  filename: Type.Optional(Type.String()),
  width: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  height: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  error: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

/** What a status change left in the image's row: what its event shows, but the detections. */
export interface ImageState {
  status: (typeof IMAGE_STATUSES)[number];
  filename: string;
  width: number | null;
  height: number | null;
  error: string | null;
}

export interface StatusChange {
  inspectionId: string;
  imageId: string;
  /** Absent when the notification was too long to carry it: read the row then. */
  state?: ImageState;
}

/** A notification's payload as a change, or undefined if it is not one. */
export function statusChangeOf(payload: string): StatusChange | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!Value.Check(Notification, parsed)) return undefined;
  const { inspectionId, imageId, status, filename, width = null, height = null, error = null } = parsed;
  if (status === undefined || filename === undefined) return { inspectionId, imageId };
  return { inspectionId, imageId, state: { status, filename, width, height, error } };
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
      const change = msg.payload ? statusChangeOf(msg.payload) : undefined;
      if (change) this.emitter.emit(change.inspectionId, change);
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
