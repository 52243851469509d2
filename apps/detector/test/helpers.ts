/**
 * Shared setup of the worker tests: a fresh PostgreSQL database with the files service's migrations (the tables the
 * detector writes), image rows to point jobs at, s3rver on a free port, and the real RabbitMQ through kit's adapter.
 * Unreachable servers fail under CI and skip with a printed reason otherwise (kit/testing `serverUnavailable`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  type JobQueue,
  type ObjectStore,
  openObjectStore,
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
import { afterAll, beforeAll } from "vitest";
import { encodeSample } from "../model/dataset/encode.js";
import { generateSample } from "../model/dataset/synth.js";
import { loadDetectorConfig } from "../src/config.js";
import type { DetectionJob } from "../src/job.js";
import { NODE_FLAGS } from "../src/node-flags.js";

const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const WORKER_SERVER = fileURLToPath(new URL("../src/server.ts", import.meta.url));

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

/**
 * `count` synthetic radiographs (PNG and JPEG in turn, from `seed`) stored under their jobs' keys and published to
 * `queueName`: what a worker process under test then consumes. Returns the jobs and the encoded images.
 */
export async function publishSyntheticJobs(
  db: SqlDatabase,
  store: ObjectStore,
  queue: JobQueue,
  queueName: string,
  count: number,
  seed: number,
): Promise<{ jobs: DetectionJob[]; images: Buffer[] }> {
  await queue.declare(queueName, { deliveryLimit: 5 });
  const jobs = await queuedImages(db, count);
  const images: Buffer[] = [];
  for (const [i, job] of jobs.entries()) {
    images.push(await encodeSample(generateSample(seed, i), i % 2 ? "jpeg" : "png"));
    await store.put(job.key, Readable.from([images[i]!]), { contentType: job.contentType });
  }
  await queue.publish(
    queueName,
    jobs.map((j) => ({ id: j.jobId, body: Buffer.from(JSON.stringify(j)) })),
  );
  return { jobs, images };
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it wrote so far, stdout and stderr. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The worker's real entry point (src/server.ts) in its own process, with `env` on top of a bare environment. */
export function spawnWorkerProcess(env: Record<string, string>): WorkerProcess {
  let output = "";
  const child = spawn(process.execPath, [...NODE_FLAGS, "--import", "tsx", WORKER_SERVER], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** Until one of `ids` is done (a first batch committed); the worker's output in the error otherwise. */
export async function untilFirstDone(db: SqlDatabase, ids: readonly string[], worker: WorkerProcess): Promise<void> {
  await waitFor(async () => (await imageRows(db, ids)).some((r) => r.status === "done"), 120_000).catch(
    (err: unknown) => {
      throw new Error(`${String(err)}; worker output:\n${worker.output()}`);
    },
  );
}

export interface WorkerProcessSuite {
  s3: TestS3;
  store: ObjectStore;
  queue: JobQueue;
  /** The worker process under test, killed after the suite if still running. */
  child?: ChildProcess | undefined;
  /** A worker's environment on this suite's servers (CPU, prefetch 16), `tuning` on top. */
  workerEnv(tuning: Record<string, string>): Record<string, string>;
}

/** Registers a suite's set-up of s3rver, the object store and the queue, and the teardown of all of it with `db`. */
export function workerProcessSuite(db: Db, queueName: string): WorkerProcessSuite {
  const suite = {
    workerEnv: (tuning: Record<string, string>): Record<string, string> => ({
      DATABASE_URL: db.test.url,
      AMQP_URL,
      DETECTIONS_QUEUE: queueName,
      DETECTIONS_DELIVERY_LIMIT: "5",
      ...suite.s3.env,
      S3_BUCKET: BUCKET,
      ORT_PROVIDERS: "cpu",
      BATCH_WAIT_MS: "10",
      PREFETCH: "16",
      ...tuning,
    }),
  } as WorkerProcessSuite;
  beforeAll(async () => {
    suite.s3 = await startS3();
    suite.store = openObjectStore(
      loadDetectorConfig({ DATABASE_URL: db.test.url, ...suite.s3.env, S3_BUCKET: BUCKET }),
    );
    suite.queue = amqpQueue();
  });
  afterAll(async () => {
    suite.child?.kill("SIGKILL");
    await suite.queue?.close();
    await suite.store?.close();
    await suite.s3?.stop();
    await deleteQueues([queueName]);
    await db.drop();
  });
  return suite;
}
