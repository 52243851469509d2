/**
 * The files service on the local stack's embedded adapters: jobs in the PostgreSQL queue, images in a directory,
 * revocations in the PostgreSQL key-value store. Only PostgreSQL is needed.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Delivery, openJobQueue, PgDatabase } from "@ndt/kit";
import { testDatabase, testIssuer, type TestIssuer } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { loadFilesConfig } from "../src/config.js";
import { bearer, fakePng, waitFor } from "./helpers.js";

const db = await testDatabase("files_embedded");

describe.skipIf(!db)("files on the embedded adapters", () => {
  let issuer: TestIssuer;
  let dir: string;
  let app: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    issuer = await testIssuer();
    dir = await mkdtemp(join(tmpdir(), "files-embedded-"));
    app = await buildApp({
      config: loadFilesConfig({
        DATABASE_URL: db!.url,
        JWKS_URL: issuer.jwksUrl,
        CACHE_BACKEND: "postgres",
        QUEUE_BACKEND: "postgres",
        QUEUE_POLL_MS: "100",
        OBJECT_STORE: "directory",
        OBJECT_STORE_DIR: dir,
        S3_BUCKET_UPLOADS: "uploads",
        OUTBOX_POLL_MS: "100",
        LOG_LEVEL: "silent",
      }),
    });
  });

  afterAll(async () => {
    await app?.close();
    await issuer?.stop();
    await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it("stores the image in the directory, publishes the job to the PostgreSQL queue, serves the bytes back", async () => {
    const org = randomUUID();
    const token = await issuer.token({ org, role: "inspector" });
    const created = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(token),
      payload: { title: "local" },
    });
    const png = fakePng(50_000);
    const res = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${created.json().id}/images`,
      headers: { ...bearer(token), "content-type": "image/png" },
      payload: png,
    });
    expect(res.statusCode).toBe(202);

    // a consumer elsewhere (the detector) on the same database
    const consumerDb = new PgDatabase(app.deps.config);
    const queue = openJobQueue({ ...app.deps.config }, { db: consumerDb });
    const got: Delivery[] = [];
    const sub = await waitFor(async () =>
      queue.consume(app.deps.config.DETECTIONS_QUEUE, { prefetch: 1 }, (d) => got.push(d)).catch(() => undefined),
    );
    await waitFor(async () => got.length > 0);
    expect(JSON.parse(got[0]!.body.toString())).toMatchObject({ imageId: res.json().id, contentType: "image/png" });
    await got[0]!.ack();
    await sub.stop();
    await queue.close();
    await consumerDb.close();

    const content = await app.inject({
      method: "GET",
      url: `/api/v1/inspections/${created.json().id}/images/${res.json().id}/content`,
      headers: bearer(token),
    });
    expect(content.statusCode).toBe(200);
    expect(content.rawPayload.equals(png)).toBe(true);
    expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
  });

  it("answers 415 and leaves no file behind for a body that is not an image", async () => {
    const org = randomUUID();
    const token = await issuer.token({ org, role: "inspector" });
    const created = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(token),
      payload: { title: "local" },
    });
    const res = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${created.json().id}/images`,
      headers: { ...bearer(token), "content-type": "image/png" },
      payload: Buffer.from("not a picture"),
    });
    expect(res.statusCode).toBe(415);
    const files = (await readdir(join(dir, "uploads"))).filter((f) => f.includes(encodeURIComponent(org)));
    expect(files).toEqual([]);
  });
});
