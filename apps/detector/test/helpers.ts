/**
 * Shared setup of the worker tests: a fresh PostgreSQL database with the files service's migrations (the tables the
 * detector writes), image rows to point jobs at, s3rver on a free port, and the real RabbitMQ through kit's adapter.
 * Unreachable servers fail under CI and skip with a printed reason otherwise (kit/testing `serverUnavailable`).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  type JobQueue,
  loadConfig,
  openJobQueue,
  PgDatabase,
  PostgresConfig,
  QueueConfigSchema,
  type SqlDatabase,
} from "@ndt/kit";
import { serverUnavailable, type TestDatabase, type TestS3, testDatabase, testS3 } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import amqp from "amqplib";
import type { DetectionJob } from "../src/job.js";

export const FILES_MIGRATIONS = fileURLToPath(new URL("../../files/migrations", import.meta.url));
export const BUCKET = "uploads-detector-test";

export interface Db {
  test: TestDatabase;
  db: PgDatabase;
  drop(): Promise<void>;
}

/** A fresh database with the images/detections tables, or undefined when PostgreSQL is unreachable (skip). */
export async function filesDatabase(label: string): Promise<Db | undefined> {
  const test = await testDatabase(label);
  if (!test) return undefined;
  const db = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: test.url }));
  await db.migrate(FILES_MIGRATIONS);
  return {
    test,
    db,
    async drop() {
      await db.close();
      await test.drop();
    },
  };
}

/** An inspection with one queued image row per job; returns the jobs (keys under `org/inspection/image`). */
export async function queuedImages(db: SqlDatabase, count: number, contentType = "image/png"): Promise<DetectionJob[]> {
  const organizationId = randomUUID();
  const inspection = await db.query<{ id: string }>(
    "INSERT INTO inspections (organization_id, title, created_by) VALUES ($1, 'weld run', $2) RETURNING id",
    [organizationId, randomUUID()],
  );
  const inspectionId = inspection.rows[0]!.id;
  const jobs: DetectionJob[] = [];
  for (let i = 0; i < count; i++) {
    const imageId = randomUUID();
    const key = `${organizationId}/${inspectionId}/${imageId}`;
    await db.query(
      `INSERT INTO images (id, inspection_id, organization_id, filename, content_type, size_bytes, object_key)
       VALUES ($1, $2, $3, $4, $5, 1, $6)`,
      [imageId, inspectionId, organizationId, `weld-${i}.png`, contentType, key],
    );
    jobs.push({
      jobId: randomUUID(),
      imageId,
      inspectionId,
      organizationId,
      bucket: BUCKET,
      key,
      contentType: contentType as DetectionJob["contentType"],
    });
  }
  return jobs;
}

export interface ImageRow {
  id: string;
  status: string;
  width: number | null;
  height: number | null;
  error: string | null;
}

export async function imageRows(db: SqlDatabase, ids: readonly string[]): Promise<ImageRow[]> {
  const { rows } = await db.query<ImageRow & { [k: string]: unknown }>(
    "SELECT id, status, width, height, error FROM images WHERE id = ANY($1::uuid[]) ORDER BY id",
    [ids],
  );
  return rows;
}

/** s3rver (kit `testS3`) with the test bucket. */
export const startS3 = (): Promise<TestS3> => testS3([BUCKET]);

export const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/** Deletes test queues with their dead-letter queue and exchange (the port has no delete: the broker's client does). */
export async function deleteQueues(names: readonly string[]): Promise<void> {
  const connection = await amqp.connect(AMQP_URL);
  const ch = await connection.createChannel();
  for (const name of names) {
    await ch.deleteQueue(name).catch(() => undefined);
    await ch.deleteQueue(`${name}.dlq`).catch(() => undefined);
    await ch.deleteExchange(`${name}.dlx`).catch(() => undefined);
  }
  await connection.close();
}

/** kit's RabbitMQ adapter of the JobQueue port. */
export function amqpQueue(): JobQueue {
  return openJobQueue(loadConfig(QueueConfigSchema, { AMQP_URL, AMQP_CONNECT_TIMEOUT_MS: "3000" }));
}

/** A unique queue name, or undefined when RabbitMQ is unreachable (skip). */
export async function testQueueName(label: string): Promise<string | undefined> {
  const probe = amqpQueue();
  try {
    await probe.ping();
  } catch (err) {
    return serverUnavailable(`RabbitMQ (${AMQP_URL})`, err);
  } finally {
    await probe.close().catch(() => undefined);
  }
  return `test.detector.${label}.${randomBytes(4).toString("hex")}`;
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}
