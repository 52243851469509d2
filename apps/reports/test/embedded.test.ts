/**
 * The local stack's wiring: the embedded cache in PostgreSQL (CACHE_BACKEND=postgres) and the directory object store
 * (OBJECT_STORE=directory), as stacks/local starts this service. Real PostgreSQL; no Redis, no S3.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DirectoryObjectStore, PgKeyValueStore, SessionRevocations } from "@ndt/kit";
import { testDatabase, testIssuer, type TestIssuer } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { loadReportsConfig } from "../src/config.js";
import { bearer, Seeder } from "./helpers.js";
import { radiograph } from "./images.js";
import { parsePdf } from "./pdf.js";

const db = await testDatabase("reports_embedded");

describe.skipIf(!db)("reports on the local stack's embedded adapters", () => {
  const ORG = randomUUID();
  let dir: string;
  let issuer: TestIssuer;
  let seed: Seeder;
  let app: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "reports-objects-"));
    issuer = await testIssuer();
    seed = await Seeder.open(db!.url, new DirectoryObjectStore(join(dir, "uploads")));
    app = await buildApp({
      config: loadReportsConfig({
        DATABASE_URL: db!.url,
        DATABASE_READER_URL: db!.url,
        CACHE_BACKEND: "postgres",
        OBJECT_STORE: "directory",
        OBJECT_STORE_DIR: dir,
        S3_BUCKET_UPLOADS: "uploads",
        S3_BUCKET_REPORTS: "reports",
        JWKS_URL: issuer.jwksUrl,
        LOG_LEVEL: "silent",
      }),
    });
  });

  afterAll(async () => {
    await app?.close();
    await seed?.close();
    await issuer?.stop();
    await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it("renders from the uploads folder, caches in the reports folder, and honours revoked sessions", async () => {
    const id = await seed.inspection(ORG);
    await seed.image(ORG, id, await radiograph(400, 300, [{ cx: 50, cy: 50, r: 8, level: 40 }]), {
      detections: [{ class: "porosity", score: 0.9, box: [42, 42, 58, 58] }],
    });
    const sid = randomUUID();
    const token = await issuer.token({ org: ORG, role: "viewer", sid });
    const get = () => app.inject({ method: "GET", url: `/api/v1/inspections/${id}/report`, headers: bearer(token) });

    const first = await get();
    expect(first.statusCode).toBe(200);
    expect(first.headers["x-report-cache"]).toBe("miss");
    expect((await parsePdf(first.rawPayload)).pages[0]).toContain(
      "Images Done Failed Porosity Crack Inclusion 1 1 0 1",
    );
    const second = await get();
    expect(second.headers["x-report-cache"]).toBe("hit");
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
    const hash = String(first.headers.etag).slice(1, -1);
    const cached = await new DirectoryObjectStore(join(dir, "reports")).head(`reports/${ORG}/${id}/${hash}.pdf`);
    expect(cached).toEqual({ size: first.rawPayload.length, contentType: "application/pdf" });

    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);

    const kv = new PgKeyValueStore(seed.db, { prefix: app.deps.config.REDIS_KEY_PREFIX });
    try {
      await new SessionRevocations(kv, 900_000).revoke(sid);
    } finally {
      await kv.close();
    }
    expect((await get()).statusCode).toBe(401);
  });
});
