/**
 * Shared setup of the reports tests: real PostgreSQL (a fresh database with files' schema), Redis (a unique
 * prefix), s3rver (uploads and reports buckets, through kit's S3 adapter) and the token issuer from @ndt/kit/testing. An unreachable server fails under CI and skips with a printed reason
 * otherwise (kit/testing `serverUnavailable`).
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { loadConfig, type ObjectStore, PgDatabase, PostgresConfig, S3ObjectStore } from "@ndt/kit";
import { type TestDatabase, type TestIssuer, type TestRedis, type TestS3, testS3 } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import { loadReportsConfig, type ReportsConfig } from "../src/config.js";
import type { DefectClass, ImageStatus } from "../src/model.js";

export const UPLOADS_BUCKET = "uploads-test";
export const REPORTS_BUCKET = "reports-test";
/** The schema is files' (the migrations Job applies it in the cloud): applied here as it is, never copied. */
export const FILES_MIGRATIONS = fileURLToPath(new URL("../../files/migrations", import.meta.url));

export interface ReportsS3 extends Pick<TestS3, "endpoint" | "env"> {
  uploads: S3ObjectStore;
  reports: S3ObjectStore;
  stop(): Promise<void>;
}

/** s3rver (kit `testS3`) with the uploads and reports buckets, and kit's S3 adapter on each. */
export async function startS3(): Promise<ReportsS3> {
  const s3 = await testS3([UPLOADS_BUCKET, REPORTS_BUCKET]);
  const uploads = new S3ObjectStore(s3.settings, UPLOADS_BUCKET);
  const reports = new S3ObjectStore(s3.settings, REPORTS_BUCKET);
  return {
    endpoint: s3.endpoint,
    env: s3.env,
    uploads,
    reports,
    async stop() {
      await uploads.close();
      await reports.close();
      await s3.stop();
    },
  };
}

export function reportsConfig(
  env: { db: TestDatabase; kv: TestRedis; s3: ReportsS3; issuer: TestIssuer },
  overrides: Record<string, string> = {},
): ReportsConfig {
  return loadReportsConfig({
    DATABASE_URL: env.db.url,
    REDIS_URL: env.kv.url,
    REDIS_KEY_PREFIX: env.kv.prefix,
    JWKS_URL: env.issuer.jwksUrl,
    ...env.s3.env,
    S3_BUCKET_UPLOADS: UPLOADS_BUCKET,
    S3_BUCKET_REPORTS: REPORTS_BUCKET,
    LOG_LEVEL: "silent",
    ...overrides,
  });
}

/** Writes rows the way files (inspections, images) and the detector (status, detections) do, and image objects. */
export class Seeder {
  constructor(
    readonly db: PgDatabase,
    private readonly uploads: ObjectStore,
  ) {}

  static async open(url: string, uploads: ObjectStore): Promise<Seeder> {
    const db = new PgDatabase(loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: url }));
    await db.migrate(FILES_MIGRATIONS);
    return new Seeder(db, uploads);
  }

  async inspection(org: string, title = "Pipeline weld 7A"): Promise<string> {
    const { rows } = await this.db.query<{ id: string }>(
      `INSERT INTO inspections (organization_id, created_by, title, site) VALUES ($1, $2, $3, 'North yard')
       RETURNING id`,
      [org, randomUUID(), title],
    );
    return rows[0]!.id;
  }

  /** An uploaded image (its bytes stored under a server-made key) in `status`, with its detections. */
  async image(
    org: string,
    inspectionId: string,
    bytes: Buffer,
    opts: {
      status?: ImageStatus;
      filename?: string;
      detections?: { class: DefectClass; score: number; box: [number, number, number, number] }[];
    } = {},
  ): Promise<string> {
    const id = randomUUID();
    const key = `uploads/${org}/${inspectionId}/${id}`;
    await this.uploads.put(key, Readable.from([bytes]), { contentType: "image/png" });
    await this.db.query(
      `INSERT INTO images (id, inspection_id, organization_id, filename, content_type, size_bytes, object_key, status)
       VALUES ($1, $2, $3, $4, 'image/png', $5, $6, $7)`,
      [id, inspectionId, org, opts.filename ?? `${id}.png`, bytes.length, key, opts.status ?? "done"],
    );
    for (const d of opts.detections ?? []) await this.detection(id, d);
    return id;
  }

  async detection(imageId: string, d: { class: DefectClass; score: number; box: [number, number, number, number] }) {
    await this.db.query(
      `INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [randomUUID(), imageId, d.class, d.score, ...d.box],
    );
  }

  async setStatus(imageId: string, status: ImageStatus) {
    await this.db.query("UPDATE images SET status = $2, updated_at = clock_timestamp() WHERE id = $1", [
      imageId,
      status,
    ]);
  }

  close() {
    return this.db.close();
  }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
