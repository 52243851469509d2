/** Inspections and uploads against real PostgreSQL, Redis, RabbitMQ and s3rver through the AWS SDK. */
import { randomUUID } from "node:crypto";
import { get as httpGet, type IncomingMessage, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import {
  loadConfig,
  MULTIPART_FRAMING_BYTES,
  RedisConfig,
  RedisStore,
  s3Client,
  SessionRevocations,
  type SqlDatabase,
} from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import pg from "pg";
import {
  type TestDatabase,
  testDatabase,
  type TestIssuer,
  testIssuer,
  testRedis,
  type TestRedis,
  testS3,
  type TestS3,
} from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import type { FilesConfig } from "../src/config.js";
import {
  BUCKET,
  bearer,
  fakeJpeg,
  fakePng,
  filesConfig,
  multipartBody,
  multipartForm,
  type TestAmqp,
  testAmqp,
  waitFor,
} from "./helpers.js";

const db = await testDatabase("files");
const kv = await testRedis("files");
const mq = await testAmqp("files");
const LIMIT = 64 * 1024;

/** An inspection's event stream over node:http: one socket, destroyed by the caller (fetch's pool may keep a spare). */
function openEvents(port: number, inspectionId: string, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) =>
    httpGet({ host: "127.0.0.1", port, path: `/api/v1/inspections/${inspectionId}/events`, headers }, resolve).on(
      "error",
      reject,
    ),
  );
}
/**
 * POST `body` over a socket of its own, declared (content-length) or chunked in 16 KiB pieces; the answer as it
 * arrives, whether or not the body was all read.
 */
function postOverSocket(
  port: number,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
  framing: "declared" | "chunked",
): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        headers: {
          ...headers,
          ...(framing === "declared" ? { "content-length": String(body.length) } : { "transfer-encoding": "chunked" }),
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) });
          req.destroy();
        });
      },
    );
    req.on("error", reject);
    let sent = 0;
    const pump = () => {
      while (sent < body.length) {
        const chunk = body.subarray(sent, sent + 16_384);
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

describe.skipIf(!db || !kv || !mq)("files service", () => {
  let s3: TestS3;
  let issuer: TestIssuer;
  let config: FilesConfig;
  let app: Awaited<ReturnType<typeof buildApp>>;
  /** A client of its own, to look at the bucket the way an operator would. */
  let bucket: S3Client;
  const orgA = randomUUID();
  const orgB = randomUUID();
  let adminA: string;
  let inspectorA: string;
  let viewerA: string;
  let adminB: string;

  beforeAll(async () => {
    s3 = await testS3([BUCKET]);
    issuer = await testIssuer();
    config = filesConfig(
      { db: db as TestDatabase, kv: kv as TestRedis, mq: mq as TestAmqp, s3, issuer },
      // heartbeats (when a stream re-checks its token) every 200 ms, so a revocation shows within the test
      { UPLOAD_MAX_BYTES: String(LIMIT), EVENT_STREAM_HEARTBEAT_MS: "200" },
    );
    app = await buildApp({ config });
    bucket = s3Client(config);
    adminA = await issuer.token({ org: orgA, role: "admin" });
    inspectorA = await issuer.token({ org: orgA, role: "inspector" });
    viewerA = await issuer.token({ org: orgA, role: "viewer" });
    adminB = await issuer.token({ org: orgB, role: "admin" });
  });

  afterAll(async () => {
    await app?.close();
    bucket?.destroy();
    await s3?.stop();
    await issuer?.stop();
    await mq?.cleanup();
    await kv?.cleanup();
    await db?.drop();
  });

  const create = async (token: string, body: Record<string, unknown> = { title: "Weld 7" }) => {
    const res = await app.inject({ method: "POST", url: "/api/v1/inspections", headers: bearer(token), payload: body });
    expect(res.statusCode).toBe(201);
    return res.json() as { id: string; title: string; site: string | null; notes: string | null };
  };

  const upload = (token: string, inspectionId: string, payload: Buffer | Readable, type = "image/png", q = "") =>
    app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspectionId}/images${q}`,
      headers: { ...bearer(token), "content-type": type },
      payload,
    });

  const objects = async () => {
    const out = await bucket.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    return (out.Contents ?? []).map((o) => o.Key);
  };

  const outboxCount = async () => Number((await app.deps.db.query("SELECT count(*) AS n FROM outbox")).rows[0]!.n);

  it("requires a bearer token and answers the error envelope with x-request-id", async () => {
    const res = await app.inject({ method: "GET", url: "/api/v1/inspections", headers: { "x-request-id": "req-42" } });
    expect(res.statusCode).toBe(401);
    expect(res.headers["x-request-id"]).toBe("req-42");
    expect(res.json()).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
  });

  it("creates an inspection for admins and inspectors, not viewers", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(inspectorA),
      payload: { title: "Pipe 12", site: "Yard B", notes: "north run" },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers["x-request-id"]).toBeTruthy();
    expect(res.json()).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      title: "Pipe 12",
      site: "Yard B",
      notes: "north run",
      status: "open",
      createdAt: expect.any(String),
    });
    // what a response shows for an unset site or notes (null) is accepted back as unset
    const roundTrip = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(inspectorA),
      payload: { title: "Pipe 13", site: null, notes: null },
    });
    expect(roundTrip.statusCode).toBe(201);
    expect(roundTrip.json()).toMatchObject({ title: "Pipe 13", site: null, notes: null });
    const viewer = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(viewerA),
      payload: { title: "x" },
    });
    expect(viewer.statusCode).toBe(403);
  });

  it("rejects a blank title with 400, and stores a title and site trimmed", async () => {
    for (const title of ["   ", "\t\n", "\u00a0", "\u200b"]) {
      const res = await app.inject({
        method: "POST",
        url: "/api/v1/inspections",
        headers: bearer(adminA),
        payload: { title },
      });
      expect([title, res.statusCode, res.json().error.code]).toEqual([title, 400, "validation_failed"]);
    }
    const trimmed = await create(adminA, { title: " Weld 7 ", site: "  Bay 3\t" });
    expect([trimmed.title, trimmed.site]).toEqual(["Weld 7", "Bay 3"]);
    expect((await create(adminA, { title: "Weld 8", site: "   " })).site).toBeNull();
  });

  it("keeps title and site to one line and notes free of control characters other than line breaks and tabs", async () => {
    const refused: [Record<string, string>, string][] = [
      [{ title: "Weld\n7" }, "body.title must be one line, without control characters"],
      [{ title: "Weld \u001b[31m7" }, "body.title must be one line, without control characters"],
      [{ title: "Weld 7", site: "Bay\r\n3" }, "body.site must be text on one line"],
      [
        { title: "Weld 7", notes: "ok\u0007bell" },
        "body.notes must be text without control characters other than line breaks and tabs",
      ],
      [
        { title: "Weld 7", notes: "C1 \u009b" },
        "body.notes must be text without control characters other than line breaks and tabs",
      ],
    ];
    for (const [payload, message] of refused) {
      const res = await app.inject({ method: "POST", url: "/api/v1/inspections", headers: bearer(adminA), payload });
      expect([res.statusCode, res.json().error]).toEqual([400, { code: "validation_failed", message }]);
    }
    const kept = await create(adminA, { title: "Weld\t7 Ω 溶接", notes: "line one\r\nline two\n\tindented" });
    expect([kept.title, kept.notes]).toEqual(["Weld\t7 Ω 溶接", "line one\r\nline two\n\tindented"]);
  });

  it("rejects unknown fields with 400", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(adminA),
      payload: { title: "x", owner: "someone-else" },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("validation_failed");
  });

  it("pages the organisation's inspections newest first with a cursor", async () => {
    const org = randomUUID();
    const token = await issuer.token({ org, role: "admin" });
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await create(token, { title: `T${i}` })).id);
    await create(adminB, { title: "other org" });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await app.inject({ method: "GET", url: `/api/v1/inspections?limit=2${q}`, headers: bearer(token) });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { items: { id: string }[]; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((i) => i.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...made].reverse());
    // a trailing slash is the same list, not an inspection with an empty id
    const slashed = await app.inject({ method: "GET", url: "/api/v1/inspections/?limit=5", headers: bearer(token) });
    expect([slashed.statusCode, slashed.json().items.map((i: { id: string }) => i.id)]).toEqual([200, seen]);

    const bad = await app.inject({ method: "GET", url: "/api/v1/inspections?cursor=nope", headers: bearer(token) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("invalid_cursor");
  });

  it("accepts a PNG: 202 queued, object stored under a server-made key, outbox row, job on the queue", async () => {
    const inspection = await create(adminA);
    const png = fakePng(20_000);
    const res = await upload(inspectorA, inspection.id, png, "image/png", "?filename=../../etc/passwd.png");
    expect(res.statusCode).toBe(202);
    const image = res.json();
    expect(image).toEqual({
      id: expect.any(String),
      filename: "../../etc/passwd.png",
      status: "queued",
      detections: [],
    });

    const key = `uploads/${orgA}/${inspection.id}/${image.id}`;
    const object = await bucket.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(png)).toBe(true);
    expect(object.ContentType).toBe("image/png");

    const { rows } = await app.deps.db.query<{ job_id: string; payload: Record<string, string> }>(
      "SELECT job_id, payload FROM outbox WHERE payload->>'imageId' = $1",
      [image.id],
    );
    expect(rows).toHaveLength(1);
    const msg = await mq!.next();
    expect(msg).toBeDefined();
    expect(msg!.properties.messageId).toBe(rows[0]!.job_id);
    expect(msg!.properties.deliveryMode).toBe(2);
    expect(JSON.parse(msg!.content.toString())).toMatchObject({
      jobId: rows[0]!.job_id,
      imageId: image.id,
      inspectionId: inspection.id,
      organizationId: orgA,
      bucket: BUCKET,
      key,
      contentType: "image/png",
    });
    await waitFor(async () => {
      const r = await app.deps.db.query("SELECT 1 FROM outbox WHERE job_id = $1 AND sent_at IS NOT NULL", [
        rows[0]!.job_id,
      ]);
      return r.rowCount === 1;
    });
  });

  it("accepts a JPEG sent as multipart field `file`, whatever its declared type", async () => {
    const inspection = await create(adminA);
    const jpeg = fakeJpeg(15_000);
    const form = multipartBody("file", "scan.jpg", "application/octet-stream", jpeg);
    const res = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspection.id}/images`,
      headers: { ...bearer(adminA), ...form.headers },
      payload: form.payload,
    });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ filename: "scan.jpg", status: "queued" });
    const { rows } = await app.deps.db.query("SELECT content_type, size_bytes FROM images WHERE id = $1", [
      res.json().id,
    ]);
    expect(rows[0]).toEqual({ content_type: "image/jpeg", size_bytes: "15000" });
    const msg = await mq!.next();
    expect(JSON.parse(msg!.content.toString())).toMatchObject({ imageId: res.json().id, contentType: "image/jpeg" });
  });

  it("answers 415 for a text body labelled image/png and stores nothing", async () => {
    const inspection = await create(adminA);
    const before = { objects: (await objects()).length, outbox: await outboxCount() };
    const res = await upload(adminA, inspection.id, Buffer.from("hello, I am not a picture at all"), "image/png");
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe("unsupported_media_type");
    const multi = multipartBody("file", "x.png", "image/png", Buffer.from("GIF89a not png either"));
    const res2 = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspection.id}/images`,
      headers: { ...bearer(adminA), ...multi.headers },
      payload: multi.payload,
    });
    expect(res2.statusCode).toBe(415);
    expect({ objects: (await objects()).length, outbox: await outboxCount() }).toEqual(before);
  });

  it("answers 413 over the size limit, declared or discovered while streaming, and stores nothing", async () => {
    const inspection = await create(adminA);
    const before = { objects: (await objects()).length, outbox: await outboxCount() };
    const declared = await upload(adminA, inspection.id, fakePng(LIMIT + 1));
    expect(declared.statusCode).toBe(413);
    expect(declared.json().error.code).toBe("payload_too_large");

    // no content-length: the limit can only be found by counting the bytes as they pass
    const body = fakePng(LIMIT * 3);
    const chunks = Array.from({ length: 12 }, (_, i) => body.subarray(i * 16_384, (i + 1) * 16_384));
    const streamed = await upload(adminA, inspection.id, Readable.from(chunks));
    expect(streamed.headers["content-length"]).not.toBe(String(body.length));
    expect(streamed.statusCode).toBe(413);

    const form = multipartBody("file", "big.png", "image/png", fakePng(LIMIT + 10));
    const multi = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspection.id}/images`,
      headers: { ...bearer(adminA), ...form.headers },
      payload: form.payload,
    });
    expect(multi.statusCode).toBe(413);

    // exactly at the limit is accepted
    const atLimit = await upload(adminA, inspection.id, fakePng(LIMIT));
    expect(atLimit.statusCode).toBe(202);
    await mq!.next();
    expect({ objects: (await objects()).length, outbox: await outboxCount() }).toEqual({
      objects: before.objects + 1,
      outbox: before.outbox + 1,
    });
  });

  /** What an upload to `inspectionId` left behind: objects under its prefix, image rows. */
  const leftovers = async (inspectionId: string) => {
    const listed = await bucket.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `uploads/${orgA}/${inspectionId}/` }),
    );
    const rows = await app.deps.db.query("SELECT id FROM images WHERE inspection_id = $1", [inspectionId]);
    return { objects: (listed.Contents ?? []).map((o) => o.Key), images: rows.rowCount };
  };

  const sendForm = (inspectionId: string, form: ReturnType<typeof multipartForm>, streamed = false, q = "") =>
    app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspectionId}/images${q}`,
      headers: { ...bearer(adminA), ...form.headers },
      // a stream: no content-length, the size is found by counting
      payload: streamed
        ? Readable.from(
            Array.from({ length: Math.ceil(form.payload.length / 16_384) }, (_, i) =>
              form.payload.subarray(i * 16_384, (i + 1) * 16_384),
            ),
          )
        : form.payload,
    });

  it("takes a multipart `file` part without a filename (curl -F 'file=<x.png') as the image", async () => {
    const inspection = await create(adminA);
    const png = fakePng(20_000);
    // no filename (as curl sends `-F 'file=<x.png'`, typed by the extension): busboy's default made it a field
    for (const type of [undefined, "image/png", "text/plain"]) {
      const res = await sendForm(
        inspection.id,
        multipartForm([{ name: "file", ...(type ? { type } : {}), data: png }]),
      );
      expect([type, res.statusCode]).toEqual([type, 202]);
      const image = res.json();
      expect(image).toMatchObject({ filename: `${image.id}.png`, status: "queued" });
      const stored = await bucket.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: `uploads/${orgA}/${inspection.id}/${image.id}` }),
      );
      expect(Buffer.from(await stored.Body!.transformToByteArray()).equals(png)).toBe(true);
      const job = JSON.parse((await mq!.next())!.content.toString());
      expect([job.imageId, job.contentType]).toEqual([image.id, "image/png"]);
    }
    // ?filename= still names it
    const named = await sendForm(
      inspection.id,
      multipartForm([{ name: "file", data: fakeJpeg() }]),
      false,
      "?filename=a.jpg",
    );
    expect([named.statusCode, named.json().filename]).toEqual([202, "a.jpg"]);
    await mq!.next();
  });

  it("refuses any multipart part beside the one `file`: 400 unexpected_part, nothing stored", async () => {
    const inspection = await create(adminA);
    const before = await outboxCount();
    const file = { name: "file", filename: "a.png", type: "image/png", data: fakePng() };
    const note = { name: "description", data: Buffer.from("north weld") };
    const cases: [string, ReturnType<typeof multipartForm>, string][] = [
      ["a field after the file", multipartForm([file, note]), 'part "description" follows it'],
      ["a field before the file", multipartForm([note, file]), 'found part "description"'],
      ["two files", multipartForm([file, { ...file, filename: "b.png" }]), 'part "file" follows it'],
      [
        "a file after the file, unnamed",
        multipartForm([file, { data: fakePng() }]),
        "a part without a name follows it",
      ],
      ["the image in another field", multipartForm([{ ...file, name: "image" }]), 'found part "image"'],
    ];
    for (const [what, form, message] of cases) {
      for (const streamed of [false, true]) {
        const res = await sendForm(inspection.id, form, streamed);
        expect([what, streamed, res.statusCode, res.json()]).toEqual([
          what,
          streamed,
          400,
          { error: { code: "unexpected_part", message: expect.stringContaining(message) } },
        ]);
      }
    }
    // a multipart body without any part
    const empty = await sendForm(inspection.id, multipartForm([]));
    expect([empty.statusCode, empty.json().error.code]).toEqual([400, "file_required"]);
    expect(await leftovers(inspection.id)).toEqual({ objects: [], images: 0 });
    expect(await outboxCount()).toBe(before);
    expect(await mq!.next(300)).toBeUndefined();
  });

  it("holds a multipart file to the size limit exactly, framing aside, and its body to a bound", async () => {
    const inspection = await create(adminA);
    const form = (size: number, framing: { preamble?: Buffer; epilogue?: Buffer } = {}) =>
      multipartForm([{ name: "file", filename: "edge.png", type: "image/png", data: fakePng(size) }], framing);
    const accepted: string[] = [];
    for (const streamed of [false, true]) {
      const atLimit = form(LIMIT);
      expect(atLimit.payload.length).toBeGreaterThan(LIMIT);
      const ok = await sendForm(inspection.id, atLimit, streamed);
      expect([streamed, ok.statusCode]).toEqual([streamed, 202]);
      accepted.push(ok.json().id);
      await mq!.next();
      const over = await sendForm(inspection.id, form(LIMIT + 1), streamed);
      expect([streamed, over.statusCode, over.json().error.code]).toEqual([streamed, 413, "payload_too_large"]);
      // framing (a preamble and an epilogue here) within its allowance
      const half = Buffer.alloc(MULTIPART_FRAMING_BYTES / 2 - 1024, 0x2e);
      const framed = await sendForm(inspection.id, form(LIMIT, { preamble: half, epilogue: half }), streamed);
      expect([streamed, framed.statusCode]).toEqual([streamed, 202]);
      accepted.push(framed.json().id);
      await mq!.next();
      // and past it: framing does not carry an unbounded body through
      const beyond = Buffer.alloc(MULTIPART_FRAMING_BYTES, 0x2e);
      for (const [where, framing] of Object.entries({
        preamble: { preamble: beyond },
        epilogue: { epilogue: beyond },
      })) {
        const res = await sendForm(inspection.id, form(LIMIT, framing), streamed);
        expect([streamed, where, res.statusCode, res.json().error?.code]).toEqual([
          streamed,
          where,
          413,
          "payload_too_large",
        ]);
      }
    }
    // the same over a real socket, where the answer may go before the body is all read
    if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const path = `/api/v1/inspections/${inspection.id}/images`;
    for (const framing of ["declared", "chunked"] as const) {
      const atLimit = form(LIMIT);
      const ok = await postOverSocket(port, path, { ...bearer(adminA), ...atLimit.headers }, atLimit.payload, framing);
      expect([framing, ok.status]).toEqual([framing, 202]);
      accepted.push(ok.body.id as string);
      await mq!.next();
      const over = form(LIMIT + 1);
      const big = form(LIMIT, { epilogue: Buffer.alloc(MULTIPART_FRAMING_BYTES, 0x2e) });
      for (const [what, body] of [
        ["file over", over],
        ["epilogue over", big],
      ] as const) {
        const res = await postOverSocket(port, path, { ...bearer(adminA), ...body.headers }, body.payload, framing);
        expect([framing, what, res.status, res.body.error?.code]).toEqual([framing, what, 413, "payload_too_large"]);
      }
    }
    const { rows } = await app.deps.db.query("SELECT id, size_bytes FROM images WHERE inspection_id = $1", [
      inspection.id,
    ]);
    expect(rows.map((r) => [r.id, Number(r.size_bytes)]).sort()).toEqual(accepted.map((id) => [id, LIMIT]).sort());
    expect((await leftovers(inspection.id)).objects).toHaveLength(accepted.length);
  });

  it("decides the type by the bytes whatever Content-Type is declared (or none)", async () => {
    const inspection = await create(adminA);
    const declared = [
      "text/plain",
      "text/plain; charset=utf-8",
      "application/json",
      "image/gif",
      "application/x-www-form-urlencoded",
      "application/octet-stream",
    ];
    for (const type of declared) {
      const res = await upload(adminA, inspection.id, fakePng(), type);
      expect([type, res.statusCode, res.json().status]).toEqual([type, 202, "queued"]);
      const job = JSON.parse((await mq!.next())!.content.toString());
      expect([type, job.imageId, job.contentType]).toEqual([type, res.json().id, "image/png"]);
    }
    const bare = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${inspection.id}/images`,
      headers: bearer(adminA),
      payload: fakeJpeg(),
    });
    expect(bare.headers["content-type"]).toMatch(/^application\/json/);
    expect(bare.statusCode).toBe(202);
    expect(JSON.parse((await mq!.next())!.content.toString()).contentType).toBe("image/jpeg");

    const before = await leftovers(inspection.id);
    for (const type of ["text/plain", "application/json", "image/png"]) {
      const res = await upload(adminA, inspection.id, Buffer.from('{"not": "an image"}'), type);
      expect([type, res.statusCode, res.json().error.code]).toEqual([type, 415, "unsupported_media_type"]);
    }
    expect(await leftovers(inspection.id)).toEqual(before);
  });

  it("answers 400 malformed_multipart for a broken multipart body and stores nothing", async () => {
    const inspection = await create(adminA);
    const before = await outboxCount();
    const form = multipartBody("file", "a.png", "image/png", fakePng());
    const cut = form.payload.subarray(0, form.payload.length - 200); // the part never ends
    const cases: [string, Buffer][] = [
      ["multipart/form-data", fakePng()], // no boundary
      ["multipart/form-data; boundary=xyz", fakePng()], // no boundary in the body
      [form.headers["content-type"], cut],
    ];
    for (const [type, payload] of cases) {
      const res = await upload(adminA, inspection.id, payload, type);
      expect([type, res.statusCode, res.json()]).toEqual([
        type,
        400,
        { error: { code: "malformed_multipart", message: expect.any(String) } },
      ]);
    }
    expect(await leftovers(inspection.id)).toEqual({ objects: [], images: 0 });
    expect(await outboxCount()).toBe(before);
  });

  it("holds a filename, from ?filename= or the multipart part, to one rule: not blank, no control characters", async () => {
    const inspection = await create(adminA);
    const refused = [`${"n".repeat(256)}.png`, "  ", "\u200b", "a\u001bb.png"];
    // (a raw line break cannot travel in a part's header; NUL is kit's own refusal in a query string)
    for (const name of [...refused, "a\u0000b.png"]) {
      const form = multipartBody("file", name, "image/png", fakePng());
      const res = await upload(adminA, inspection.id, form.payload, form.headers["content-type"]);
      expect([name, res.statusCode, res.json().error.code]).toEqual([name, 400, "validation_failed"]);
    }
    for (const name of [...refused, "a\nb.png"]) {
      const res = await upload(adminA, inspection.id, fakePng(), "image/png", `?filename=${encodeURIComponent(name)}`);
      expect([name, res.statusCode, res.json().error.message]).toEqual([
        name,
        400,
        name.length > 255
          ? "querystring.filename must NOT have more than 255 characters"
          : name.trim() === "" || name === "\u200b"
            ? "querystring.filename must not be blank"
            : "querystring.filename must be one line, without control characters",
      ]);
    }
    expect(await leftovers(inspection.id)).toEqual({ objects: [], images: 0 });
    const named = await upload(
      adminA,
      inspection.id,
      fakePng(),
      "image/png",
      `?filename=${encodeURIComponent("Шов 7 ü.png")}`,
    );
    expect([named.statusCode, named.json().filename]).toEqual([202, "Шов 7 ü.png"]);
  });

  it("deletes the stored object when the database rejects the image row", async () => {
    const inspection = await create(adminA);
    const before = await outboxCount();
    // a real rejection by PostgreSQL, after the bytes are in storage
    await app.deps.db.query("ALTER TABLE images ADD CONSTRAINT test_reject CHECK (filename <> 'rejected-by-db.png')");
    try {
      const res = await upload(adminA, inspection.id, fakePng(), "image/png", "?filename=rejected-by-db.png");
      expect(res.statusCode).toBe(500);
      expect(res.json().error.code).toBe("internal_error");
    } finally {
      await app.deps.db.query("ALTER TABLE images DROP CONSTRAINT test_reject");
    }
    expect(await leftovers(inspection.id)).toEqual({ objects: [], images: 0 });
    // a NUL in the filename: PostgreSQL refuses the text (or an earlier check refuses the request)
    const nul = await upload(adminA, inspection.id, fakePng(), "image/png", "?filename=a%00b.png");
    expect(nul.statusCode).toBeGreaterThanOrEqual(400);
    expect(await leftovers(inspection.id)).toEqual({ objects: [], images: 0 });
    expect(await outboxCount()).toBe(before);
  });

  it("keeps the object and answers 202 when the image row was written though its COMMIT reported an error", async () => {
    // the connection lost on COMMIT, after PostgreSQL committed: the upload was in fact accepted
    const real = app.deps.db;
    let nextCommit: "reported" | "lost" | "lost, then the database gone" = "lost";
    let unreachable = false;
    const lossy: SqlDatabase = {
      query: (text, params) =>
        unreachable ? Promise.reject(new Error("connect ECONNREFUSED")) : real.query(text, params),
      async transaction(fn) {
        const result = await real.transaction(fn);
        if (nextCommit === "reported") return result;
        unreachable = nextCommit === "lost, then the database gone";
        nextCommit = "reported";
        throw new Error("Connection terminated unexpectedly");
      },
      migrate: (dir, table) => real.migrate(dir, table),
      ping: () => real.ping(),
      close: async () => undefined,
    };
    const flaky = await buildApp({ config, db: lossy, migrate: false, relay: false });
    const send = (inspectionId: string) =>
      flaky.inject({
        method: "POST",
        url: `/api/v1/inspections/${inspectionId}/images`,
        headers: { ...bearer(adminA), "content-type": "image/png" },
        payload: fakePng(),
      });
    try {
      const inspection = await create(adminA);
      const before = await outboxCount();
      const res = await send(inspection.id);
      expect([res.statusCode, res.json().status]).toEqual([202, "queued"]);
      const left = await leftovers(inspection.id);
      expect([left.objects.length, left.images]).toEqual([1, 1]);
      expect(await outboxCount()).toBe(before + 1);

      // the database gone right after: whether the row exists cannot be told, so the object is kept
      const unknown = await create(adminA);
      nextCommit = "lost, then the database gone";
      expect((await send(unknown.id)).statusCode).toBe(500);
      expect((await leftovers(unknown.id)).objects).toHaveLength(1);
    } finally {
      await flaky.close();
    }
  });

  it("shows images, detections and a summary on the inspection, and streams the content back", async () => {
    const inspection = await create(adminA, { title: "Tank 3" });
    const png = fakePng(12_345);
    const a = (await upload(adminA, inspection.id, png)).json();
    const b = (await upload(adminA, inspection.id, fakeJpeg(), "image/jpeg")).json();
    await mq!.next();
    await mq!.next();
    // what the detector writes
    await app.deps.db.query("UPDATE images SET status = 'done', width = 640, height = 480 WHERE id = $1", [a.id]);
    await app.deps.db.query("UPDATE images SET status = 'failed', error = 'corrupt image' WHERE id = $1", [b.id]);
    await app.deps.db.query(
      `INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2) VALUES
       ($1, $2, 'crack', 0.9, 1, 2, 30, 40), ($1, $2, 'porosity', 0.8, 5, 5, 9, 9), ($1, $2, 'crack', 0.7, 0, 0, 3, 3)`,
      [randomUUID(), a.id],
    );
    const res = await app.inject({
      method: "GET",
      url: `/api/v1/inspections/${inspection.id}`,
      headers: bearer(viewerA),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ id: inspection.id, title: "Tank 3", status: "open" });
    expect(body.images).toEqual([
      {
        id: a.id,
        filename: `${a.id}.png`,
        status: "done",
        width: 640,
        height: 480,
        detections: [
          { class: "crack", score: expect.closeTo(0.9, 5), box: [1, 2, 30, 40] },
          { class: "porosity", score: expect.closeTo(0.8, 5), box: [5, 5, 9, 9] },
          { class: "crack", score: expect.closeTo(0.7, 5), box: [0, 0, 3, 3] },
        ],
      },
      { id: b.id, filename: `${b.id}.jpg`, status: "failed", error: "corrupt image", detections: [] },
    ]);
    expect(body.summary).toEqual({ images: 2, done: 1, failed: 1, defects: { porosity: 1, crack: 2, inclusion: 0 } });

    const content = await app.inject({
      method: "GET",
      url: `/api/v1/inspections/${inspection.id}/images/${a.id}/content`,
      headers: bearer(viewerA),
    });
    expect(content.statusCode).toBe(200);
    expect(content.headers["content-type"]).toBe("image/png");
    expect(content.rawPayload.equals(png)).toBe(true);
  });

  it("reads an inspection as one snapshot: no image is processing with detections, or done without them", async () => {
    const inspection = await create(adminA, { title: "Snapshot" });
    const ids = Array.from({ length: 40 }, () => randomUUID());
    for (const id of ids) {
      await app.deps.db.query(
        `INSERT INTO images (id, inspection_id, organization_id, filename, content_type, size_bytes, object_key, status)
         VALUES ($1, $2, $3, 'w.png', 'image/png', 1, $4, 'processing')`,
        [id, inspection.id, orgA, `${orgA}/${inspection.id}/${id}`],
      );
    }
    let writing = true;
    // as the detector completes an image: its detections and `done` in one transaction
    const writer = (async () => {
      for (const id of ids) {
        await app.deps.db.transaction(async (tx) => {
          await tx.query(
            `INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2)
             VALUES ($1, $2, 'crack', 0.9, 1, 2, 3, 4), ($1, $2, 'porosity', 0.8, 5, 6, 7, 8)`,
            [randomUUID(), id],
          );
          await tx.query("UPDATE images SET status = 'done', width = 10, height = 10 WHERE id = $1", [id]);
        });
      }
      writing = false;
    })();
    const torn: string[] = [];
    let reads = 0;
    while (writing) {
      const res = await app.inject({
        method: "GET",
        url: `/api/v1/inspections/${inspection.id}`,
        headers: bearer(viewerA),
      });
      reads++;
      for (const image of res.json().images as { status: string; detections: unknown[] }[]) {
        if ((image.status === "done") !== (image.detections.length === 2)) {
          torn.push(`${image.status} with ${image.detections.length} detections`);
        }
      }
    }
    await writer;
    expect(reads).toBeGreaterThan(5);
    expect(torn).toEqual([]);
  });

  it("streams one server-sent event per image status change", async () => {
    const inspection = await create(adminA);
    if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const res = await openEvents(port, inspection.id, bearer(viewerA));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(res.headers["x-request-id"]).toBeTruthy();
    let text = "";
    res.on("data", (chunk: Buffer) => (text += chunk.toString()));
    const events = (n: number) =>
      waitFor(async () => {
        const parsed = text
          .split("\n\n")
          .filter((e) => e.startsWith("event: image"))
          .map((e) =>
            JSON.parse(
              e
                .split("\n")
                .find((l) => l.startsWith("data: "))!
                .slice(6),
            ),
          );
        return parsed.length >= n && parsed;
      });
    const image = (await upload(adminA, inspection.id, fakePng())).json();
    await mq!.next();
    expect((await events(1))[0]).toMatchObject({ id: image.id, status: "queued" });
    await app.deps.db.query("UPDATE images SET status = 'processing' WHERE id = $1", [image.id]);
    await app.deps.db.query("UPDATE images SET status = 'processing', width = 10 WHERE id = $1", [image.id]); // same status
    await app.deps.db.query("UPDATE images SET status = 'done' WHERE id = $1", [image.id]);
    await events(3);
    // a change that is not a status change sends nothing: exactly three events, even after a pause
    await new Promise((r) => setTimeout(r, 300));
    const all = await events(3);
    expect(all.map((e) => e.status)).toEqual(["queued", "processing", "done"]);

    // changes faster than the stream reads: each event still carries the status that changed, once (reading the
    // row later showed "processing" for the "queued" change, twice)
    const fast = (await upload(adminA, inspection.id, fakePng())).json();
    await mq!.next();
    // four transactions in one round trip (one simple query): all commit, and notify, before the stream reads any
    const fastId = `'${fast.id}'::uuid`;
    const writer = new pg.Client({ connectionString: (db as TestDatabase).url });
    await writer.connect();
    await writer.query(
      [
        `BEGIN; UPDATE images SET status = 'processing' WHERE id = ${fastId}; COMMIT`,
        `BEGIN; UPDATE images SET status = 'queued' WHERE id = ${fastId}; COMMIT`, // a worker's shutdown gives it back
        `BEGIN; UPDATE images SET status = 'processing' WHERE id = ${fastId}; COMMIT`,
        `BEGIN; INSERT INTO detections (job_id, image_id, class, score, x1, y1, x2, y2)
           VALUES ('${randomUUID()}', ${fastId}, 'crack', 0.9, 1, 2, 3, 4);
         UPDATE images SET status = 'done', width = 64, height = 32 WHERE id = ${fastId}; COMMIT`,
      ].join(";\n"),
    );
    await writer.end();
    const later = (await events(3 + 5)).slice(3);
    expect(later.map((e) => [e.id, e.status])).toEqual(
      ["queued", "processing", "queued", "processing", "done"].map((status) => [fast.id, status]),
    );
    expect(later[0]).toEqual({ id: fast.id, filename: fast.filename, status: "queued", detections: [] });
    expect(later[4]).toMatchObject({ width: 64, height: 32, detections: [{ class: "crack", box: [1, 2, 3, 4] }] });

    // a state too long for a notification (NOTIFY takes < 8000 bytes) must not fail the write: its event reads the row
    const long = (await upload(adminA, inspection.id, fakePng())).json();
    await mq!.next();
    await app.deps.db.query("UPDATE images SET status = 'failed', error = $2 WHERE id = $1", [
      long.id,
      "é".repeat(5000),
    ]);
    const failed = (await events(3 + 5 + 2)).slice(8);
    expect(failed.map((e) => [e.id, e.status])).toEqual([
      [long.id, "queued"],
      [long.id, "failed"],
    ]);
    expect(failed[1].error).toHaveLength(5000);
    res.destroy();

    // a client reconnecting with Last-Event-ID gets every image's current state first (what changed while it was
    // away is not lost), then the changes as before
    const resumed = await openEvents(port, inspection.id, { ...bearer(viewerA), "last-event-id": `${long.id}:failed` });
    text = "";
    resumed.on("data", (chunk: Buffer) => (text += chunk.toString()));
    const current = await events(3);
    expect(current.map((e) => [e.id, e.status])).toEqual([
      [image.id, "done"],
      [fast.id, "done"],
      [long.id, "failed"],
    ]);
    expect(current[1]).toMatchObject({ width: 64, height: 32, detections: [{ class: "crack", box: [1, 2, 3, 4] }] });
    await app.deps.db.query("UPDATE images SET status = 'processing' WHERE id = $1", [image.id]);
    expect((await events(4))[3]).toMatchObject({ id: image.id, status: "processing" });
    resumed.destroy();
  });

  it("ends an event stream at its token's expiry, and at the next heartbeat after its session is revoked", async () => {
    const inspection = await create(adminA);
    if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const open = async (token: string) => {
      const res = await openEvents(port, inspection.id, bearer(token));
      expect(res.statusCode).toBe(200);
      res.resume();
      return new Promise<number>((resolve) => res.on("end", () => resolve(Date.now())));
    };
    // a session revoked (a logout, a password change, a reused refresh token) while its stream is open
    const sid = randomUUID();
    const revocable = open(await issuer.token({ org: orgA, role: "viewer", sid }));
    // a token that expires in 2 s
    const expiring = open(await issuer.token({ org: orgA, role: "viewer", ttlSec: 2 }));
    const openedAt = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    const store = new RedisStore(
      loadConfig(Type.Object(RedisConfig), {
        REDIS_URL: (kv as TestRedis).url,
        REDIS_KEY_PREFIX: (kv as TestRedis).prefix,
      }),
    );
    const revokedAt = Date.now();
    await new SessionRevocations(store, 900_000).revoke(sid);
    await store.close();
    const bound = (ms: number) => new Promise<number>((r) => setTimeout(() => r(-1), ms));
    const revokedEnd = await Promise.race([revocable, bound(5_000)]);
    expect(revokedEnd, "the revoked session's stream was still open 5 s later").toBeGreaterThan(0);
    expect(revokedEnd - revokedAt).toBeLessThan(2_000);
    const expiredEnd = await Promise.race([expiring, bound(5_000)]);
    expect(expiredEnd, "the expired token's stream was still open 5 s later").toBeGreaterThan(0);
    // exp is whole seconds: between 1 and 2 s after the token was made
    expect(expiredEnd - openedAt).toBeLessThan(3_000);
  });

  it("answers 404 for another organisation's inspection and images, everywhere", async () => {
    const inspection = await create(adminA);
    const image = (await upload(adminA, inspection.id, fakePng())).json();
    await mq!.next();
    const before = await outboxCount();
    const urls = [
      ["GET", `/api/v1/inspections/${inspection.id}`],
      ["GET", `/api/v1/inspections/${inspection.id}/images/${image.id}/content`],
      ["GET", `/api/v1/inspections/${inspection.id}/events`],
    ] as const;
    for (const [method, url] of urls) {
      const res = await app.inject({ method, url, headers: bearer(adminB) });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error.code).toBe("not_found");
    }
    const up = await upload(adminB, inspection.id, fakePng());
    expect(up.statusCode).toBe(404);
    expect(await outboxCount()).toBe(before);
    // an image id under the wrong inspection of the right organisation is absent too
    const other = await create(adminA);
    const wrong = await app.inject({
      method: "GET",
      url: `/api/v1/inspections/${other.id}/images/${image.id}/content`,
      headers: bearer(adminA),
    });
    expect(wrong.statusCode).toBe(404);
    const list = await app.inject({ method: "GET", url: "/api/v1/inspections?limit=100", headers: bearer(adminB) });
    expect(list.json().items.map((i: { id: string }) => i.id)).not.toContain(inspection.id);
  });

  it("declares `detections` as a quorum queue with a dead-letter queue", async () => {
    const ch = await mq!.connection.createChannel();
    ch.on("error", () => undefined);
    await expect(
      ch.assertQueue(mq!.queue, { durable: true, arguments: { "x-queue-type": "classic" } }),
    ).rejects.toThrow(/PRECONDITION_FAILED/);
    const ch2 = await mq!.connection.createChannel();
    const dlq = await ch2.checkQueue(`${mq!.queue}.dlq`);
    expect(dlq.queue).toBe(`${mq!.queue}.dlq`);
    await ch2.close();
  });

  it("documents the upload's request body: raw PNG/JPEG bytes or multipart field `file`", async () => {
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const body = doc.paths["/api/v1/inspections/{id}/images"].post.requestBody;
    expect(body.required).toBe(true);
    expect(Object.keys(body.content).sort()).toEqual([
      "application/octet-stream",
      "image/jpeg",
      "image/png",
      "multipart/form-data",
    ]);
    expect(body.content["multipart/form-data"].schema.required).toEqual(["file"]);
  });

  it("stores through the S3 adapter with path-style addressing, and reports every dependency ready", async () => {
    expect(s3Client(config).config.forcePathStyle).toBe(true);
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
  });
});
