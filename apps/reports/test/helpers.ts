/**
 * Shared setup of the reports tests: real PostgreSQL (a fresh database with files' schema), Redis (a unique
 * prefix), s3rver on a free port in a temp dir (uploads and reports buckets, through kit's S3 adapter), and a JWKS
 * server whose key signs the test tokens. An unreachable server fails under CI and skips with a printed reason
 * otherwise (kit/testing `serverUnavailable`).
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { Readable } from "node:stream";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, type ObjectStore, PgDatabase, PostgresConfig, S3ObjectStore } from "@ndt/kit";
import type { TestDatabase, TestRedis } from "@ndt/kit/testing";
import { Type } from "@sinclair/typebox";
import Fastify from "fastify";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import S3rver from "s3rver";
import { loadReportsConfig, type ReportsConfig } from "../src/config.js";
import type { DefectClass, ImageStatus } from "../src/model.js";

export const UPLOADS_BUCKET = "uploads-test";
export const REPORTS_BUCKET = "reports-test";
/** The schema is files' (the migrations Job applies it in the cloud): applied here as it is, never copied. */
export const FILES_MIGRATIONS = fileURLToPath(new URL("../../files/migrations", import.meta.url));

export interface TestS3 {
  endpoint: string;
  uploads: S3ObjectStore;
  reports: S3ObjectStore;
  stop(): Promise<void>;
}

export async function startS3(): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), "reports-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [
      { name: UPLOADS_BUCKET, configs: [] },
      { name: REPORTS_BUCKET, configs: [] },
    ],
  });
  const { port } = (await server.run()) as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const settings = {
    S3_ENDPOINT: endpoint,
    S3_REGION: "us-east-1",
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_FORCE_PATH_STYLE: true,
    S3_PART_BYTES: 5 * 1024 * 1024,
    S3_QUEUE_SIZE: 2,
  };
  const uploads = new S3ObjectStore(settings, UPLOADS_BUCKET);
  const reports = new S3ObjectStore(settings, REPORTS_BUCKET);
  return {
    endpoint,
    uploads,
    reports,
    async stop() {
      await uploads.close();
      await reports.close();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface TestIssuer {
  jwksUrl: string;
  token(claims: { org: string; role: "admin" | "inspector" | "viewer"; sub?: string; sid?: string }): Promise<string>;
  stop(): Promise<void>;
}

/** A local ES256 key, published as a JWKS by a tiny Fastify server, signing tokens shaped like auth's. */
export async function startIssuer(): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const server = Fastify();
  server.get("/.well-known/jwks.json", async () => ({ keys: [jwk] }));
  await server.listen({ host: "127.0.0.1", port: 0 });
  const { port } = server.server.address() as AddressInfo;
  return {
    jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async token({ org, role, sub = randomUUID(), sid = randomUUID() }) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ org, role, sid })
        .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
        .setSubject(sub)
        .setIssuer("ndt-auth")
        .setAudience("ndt-api")
        .setJti(randomUUID())
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + 900)
        .sign(privateKey);
    },
    stop: () => server.close(),
  };
}

export function reportsConfig(
  env: { db: TestDatabase; kv: TestRedis; s3: TestS3; issuer: TestIssuer },
  overrides: Record<string, string> = {},
): ReportsConfig {
  return loadReportsConfig({
    DATABASE_URL: env.db.url,
    REDIS_URL: env.kv.url,
    REDIS_KEY_PREFIX: env.kv.prefix,
    JWKS_URL: env.issuer.jwksUrl,
    S3_ENDPOINT: env.s3.endpoint,
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_FORCE_PATH_STYLE: "true",
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
