/**
 * GET /api/v1/inspections/:id/report against the real servers: PostgreSQL (files' schema, seeded as files and the
 * detector write it), Redis, s3rver through kit's S3 adapter, tokens from a local JWKS.
 */
import { randomUUID } from "node:crypto";
import { RedisStore, SessionRevocations } from "@ndt/kit";
import { testDatabase, testIssuer, type TestIssuer, testRedis } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { bearer, reportsConfig, Seeder, startS3 } from "./helpers.js";
import { radiograph } from "./images.js";
import { imagesPerPage, parsePdf } from "./pdf.js";

const db = await testDatabase("reports");
const kv = await testRedis("reports");

describe.skipIf(!db || !kv)("reports service", () => {
  const ORG = randomUUID();
  const OTHER_ORG = randomUUID();
  let s3: Awaited<ReturnType<typeof startS3>>;
  let issuer: TestIssuer;
  let seed: Seeder;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let viewer: string;

  beforeAll(async () => {
    s3 = await startS3();
    issuer = await testIssuer();
    seed = await Seeder.open(db!.url, s3.uploads);
    app = await buildApp({ config: reportsConfig({ db: db!, kv: kv!, s3, issuer }) });
    viewer = await issuer.token({ org: ORG, role: "viewer" });
  });

  afterAll(async () => {
    await app?.close();
    await seed?.close();
    await issuer?.stop();
    await s3?.stop();
    await kv?.cleanup();
    await db?.drop();
  });

  const get = (id: string, token = viewer, headers: Record<string, string> = {}) =>
    app.inject({ method: "GET", url: `/api/v1/inspections/${id}/report`, headers: { ...bearer(token), ...headers } });

  /** An inspection of ORG with two done images (2 porosity + 1 crack, 1 inclusion) and a failed one. */
  async function seededInspection() {
    const id = await seed.inspection(ORG);
    const first = await seed.image(ORG, id, await radiograph(640, 400, [{ cx: 112, cy: 162, r: 12, level: 60 }]), {
      filename: "weld-01.png",
      detections: [
        { class: "porosity", score: 0.93, box: [100, 150, 124, 174] },
        { class: "porosity", score: 0.81, box: [300, 200, 316, 216] },
        { class: "crack", score: 0.88, box: [400, 160, 520, 190] },
      ],
    });
    await seed.image(ORG, id, await radiograph(500, 500, []), {
      filename: "weld-02.png",
      detections: [{ class: "inclusion", score: 0.77, box: [50, 180, 90, 200] }],
    });
    await seed.image(ORG, id, Buffer.from("not an image"), { filename: "broken.png", status: "failed" });
    return { id, first };
  }

  it("answers the PDF: header, counts per defect class, each image with its boxes and defect list", async () => {
    const { id } = await seededInspection();
    const res = await get(id);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/pdf");
    expect(res.headers["content-disposition"]).toBe(`inline; filename="inspection-${id}.pdf"`);
    expect(res.headers.etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(res.rawPayload.subarray(0, 5).toString()).toBe("%PDF-");
    const pdf = await parsePdf(res.rawPayload);
    expect(pdf.pages[0]).toContain("Pipeline weld 7A");
    expect(pdf.pages[0]).toContain(`Inspection ${id}`);
    expect(pdf.pages[0]).toContain("Images Done Failed Porosity Crack Inclusion 3 2 1 2 1 1");
    expect(pdf.pages).toHaveLength(4);
    expect(pdf.pages[1]).toContain("weld-01.png");
    expect(pdf.pages[1]).toContain("1 porosity 0.93");
    expect(pdf.pages[1]).toContain("1 Porosity 0.93 100, 150, 124, 174 2 Crack 0.88 400, 160, 520, 190");
    expect(pdf.pages[2]).toContain("1 Inclusion 0.77 50, 180, 90, 200");
    expect(pdf.pages[3]).toContain("Image not shown: the image could not be decoded.");
    expect(await imagesPerPage(res.rawPayload)).toEqual([0, 1, 1, 0]);
  });

  it("serves a second request from the reports bucket: same bytes, no second render", async () => {
    const { id } = await seededInspection();
    const rendersBefore = app.deps.service.renders;
    const first = await get(id);
    expect(first.statusCode).toBe(200);
    expect(first.headers["x-report-cache"]).toBe("miss");
    expect(app.deps.service.renders).toBe(rendersBefore + 1);

    const second = await get(id, await issuer.token({ org: ORG, role: "inspector" }));
    expect(second.statusCode).toBe(200);
    expect(second.headers["x-report-cache"]).toBe("hit");
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(app.deps.service.renders).toBe(rendersBefore + 1);

    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/ndt_reports_served_total\{[^}]*cache="hit"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/ndt_reports_served_total\{[^}]*cache="miss"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/ndt_reports_render_seconds_count\{[^}]*images="1-10"[^}]*\} [1-9]/);

    // the cached object: reports/<org>/<inspection>/<hash>.pdf in the reports bucket
    const hash = String(first.headers.etag).slice(1, -1);
    const stored = await s3.reports.head(`reports/${ORG}/${id}/${hash}.pdf`);
    expect(stored).toEqual({ size: first.rawPayload.length, contentType: "application/pdf" });
  });

  it("answers 304 to If-None-Match with the current ETag, without reading the bucket", async () => {
    const { id } = await seededInspection();
    const first = await get(id);
    const etag = String(first.headers.etag);
    // gone from the bucket: a 304 must not need it
    await s3.reports.delete(`reports/${ORG}/${id}/${etag.slice(1, -1)}.pdf`);
    const again = await get(id, viewer, { "if-none-match": etag });
    expect(again.statusCode).toBe(304);
    expect(again.rawPayload.length).toBe(0);
    const other = await get(id, viewer, { "if-none-match": '"0000", W/"1111"' });
    expect(other.statusCode).toBe(200);
    expect(other.rawPayload.equals(first.rawPayload)).toBe(true);
  });

  it("renders a new report under a new hash when the inspection changes", async () => {
    const { id, first } = await seededInspection();
    const before = await get(id);
    const rendersBefore = app.deps.service.renders;

    await seed.detection(first, { class: "crack", score: 0.66, box: [10, 10, 60, 20] });
    const after = await get(id);
    expect(after.statusCode).toBe(200);
    expect(after.headers["x-report-cache"]).toBe("miss");
    expect(after.headers.etag).not.toBe(before.headers.etag);
    expect(app.deps.service.renders).toBe(rendersBefore + 1);
    expect((await parsePdf(after.rawPayload)).pages[0]).toContain(
      "Images Done Failed Porosity Crack Inclusion 3 2 1 2 2 1",
    );
    // both states stay cached under their own hashes
    for (const res of [before, after]) {
      const hash = String(res.headers.etag).slice(1, -1);
      expect(await s3.reports.head(`reports/${ORG}/${id}/${hash}.pdf`)).not.toBeNull();
    }

    await seed.db.query("UPDATE inspections SET title = 'Pipeline weld 7B' WHERE id = $1", [id]);
    const retitled = await get(id);
    expect(retitled.headers.etag).not.toBe(after.headers.etag);
    expect((await parsePdf(retitled.rawPayload)).pages[0]).toContain("Pipeline weld 7B");
  });

  it("answers 409 not_ready while an image is queued or processing, and caches nothing", async () => {
    const { id } = await seededInspection();
    const waiting = await seed.image(ORG, id, await radiograph(320, 320, []), { status: "queued" });
    const rendersBefore = app.deps.service.renders;
    for (const status of ["queued", "processing"] as const) {
      await seed.setStatus(waiting, status);
      const res = await get(id);
      expect(res.statusCode).toBe(409);
      expect(res.json()).toEqual({ error: { code: "not_ready", message: expect.stringMatching(/1 image is still/) } });
    }
    expect(app.deps.service.renders).toBe(rendersBefore);
    await seed.setStatus(waiting, "done");
    const done = await get(id);
    expect(done.statusCode).toBe(200);
    expect((await parsePdf(done.rawPayload)).pages[0]).toContain("Images Done Failed Porosity Crack Inclusion 4 3 1");
  });

  it("answers 404 for another organisation's inspection, as for one that does not exist", async () => {
    const { id } = await seededInspection();
    const outsider = await issuer.token({ org: OTHER_ORG, role: "admin" });
    const res = await get(id, outsider);
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: "not_found", message: "Inspection not found" } });
    const missing = await get(randomUUID());
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual(res.json());
  });

  it("rejects a malformed id (400) and a missing or bad token (401), in the error envelope", async () => {
    const bad = await get("not-a-uuid");
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("validation_failed");
    const anonymous = await app.inject({ method: "GET", url: `/api/v1/inspections/${randomUUID()}/report` });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().error.code).toBe("unauthorized");
    expect((await get(randomUUID(), "garbage.token.here")).statusCode).toBe(401);
  });

  it("refuses a token whose session was revoked (logout), checked in the cache", async () => {
    const { id } = await seededInspection();
    const sid = randomUUID();
    const token = await issuer.token({ org: ORG, role: "viewer", sid });
    expect((await get(id, token)).statusCode).toBe(200);
    const store = new RedisStore({ ...app.deps.config, REDIS_URL: kv!.url });
    try {
      await new SessionRevocations(store, 900_000).revoke(sid);
    } finally {
      await store.close();
    }
    const res = await get(id, token);
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe("unauthorized");
  });

  it("renders once for concurrent requests of the same report", async () => {
    const { id } = await seededInspection();
    const rendersBefore = app.deps.service.renders;
    const responses = await Promise.all([get(id), get(id), get(id)]);
    for (const res of responses) {
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.equals(responses[0]!.rawPayload)).toBe(true);
    }
    expect(app.deps.service.renders).toBe(rendersBefore + 1);
  });

  it("reads from the read replica when DATABASE_READER_URL is set", async () => {
    const { id } = await seededInspection();
    // the primary is an empty database: a read that went there would find no tables and fail
    const empty = await testDatabase("reports_primary");
    const replicaApp = await buildApp({
      config: reportsConfig(
        { db: empty!, kv: kv!, s3, issuer },
        { DATABASE_READER_URL: db!.url, S3_PREFIX_REPORTS: "reports/replica/" },
      ),
    });
    try {
      const res = await replicaApp.inject({
        method: "GET",
        url: `/api/v1/inspections/${id}/report`,
        headers: bearer(viewer),
      });
      expect(res.statusCode).toBe(200);
      expect((await parsePdf(res.rawPayload)).pages[0]).toContain("Images Done Failed Porosity Crack Inclusion 3 2 1");
    } finally {
      await replicaApp.close();
      await empty!.drop();
    }
  });

  it("answers 500 in the envelope, without internals, when the report cannot be stored", async () => {
    const { id } = await seededInspection();
    const broken = await buildApp({
      config: reportsConfig({ db: db!, kv: kv!, s3, issuer }, { S3_BUCKET_REPORTS: "no-such-bucket" }),
    });
    try {
      const res = await broken.inject({
        method: "GET",
        url: `/api/v1/inspections/${id}/report`,
        headers: bearer(viewer),
      });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({ error: { code: "internal_error", message: "Internal server error" } });
      const ready = await broken.inject({ method: "GET", url: "/readyz" });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().checks.reports).toBe("fail");
    } finally {
      await broken.close();
    }
  });

  it("documents the route in its OpenAPI document (merged by the gateway)", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const route = doc.paths["/api/v1/inspections/{id}/report"].get;
    expect(Object.keys(route.responses)).toEqual(expect.arrayContaining(["200", "304", "404", "409"]));
    expect(Object.keys(route.responses["200"].content)).toEqual(["application/pdf"]);
  });

  it("is live without its dependencies' help, and ready when they answer", async () => {
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.json()).toEqual({
      status: "ok",
      checks: { postgres: "ok", cache: "ok", uploads: "ok", reports: "ok" },
    });
  });
});
