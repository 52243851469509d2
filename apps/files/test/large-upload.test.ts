/**
 * P7 at scale: a 1 GiB image streamed through the HTTP route to S3 (s3rver in a child process, real AWS SDK
 * multipart) while this process's resident memory (the service and the client) is sampled; memory must not grow with the file. The bytes are generated as they are
 * sent (a PNG signature, then filler), so the test itself holds no more than one chunk.
 */
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { s3Client } from "@ndt/kit";
import { type TestDatabase, type TestRedis, testDatabase, testRedis } from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import {
  BUCKET,
  filesConfig,
  startIssuer,
  startS3Process,
  type TestAmqp,
  type TestIssuer,
  type TestS3,
  testAmqp,
} from "./helpers.js";

const db = await testDatabase("files_large");
const kv = await testRedis("files_large");
const mq = await testAmqp("files_large");

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe.skipIf(!db || !kv || !mq)("1 GiB upload", () => {
  let s3: TestS3;
  let issuer: TestIssuer;
  let app: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    // its own process: the sampled RSS is the service's (and this client's), not the S3 server's
    s3 = await startS3Process();
    issuer = await startIssuer();
    app = await buildApp({
      config: filesConfig(
        { db: db as TestDatabase, kv: kv as TestRedis, mq: mq as TestAmqp, s3, issuer },
        { UPLOAD_MAX_BYTES: String(GiB + MiB) },
      ),
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
  });

  afterAll(async () => {
    await app?.close();
    await s3?.stop();
    await issuer?.stop();
    await mq?.cleanup();
    await kv?.cleanup();
    await db?.drop();
  });

  it("streams 1 GiB through the route to S3 with resident memory growing by less than 100 MiB", async () => {
    const org = randomUUID();
    const token = await issuer.token({ org, role: "inspector" });
    const created = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: { authorization: `Bearer ${token}` },
      payload: { title: "large" },
    });
    const inspectionId = created.json().id as string;
    const { port } = app.server.address() as AddressInfo;

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);

    const filler = Buffer.alloc(256 * 1024, 0x5a);
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: `/api/v1/inspections/${inspectionId}/images?filename=huge.png`,
          // chunked, no content-length: the size can only be known by counting
          headers: { authorization: `Bearer ${token}`, "content-type": "image/png" },
        },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      let sent = 0;
      const pump = () => {
        while (sent < GiB) {
          const chunk = sent === 0 ? Buffer.concat([PNG_MAGIC, filler.subarray(PNG_MAGIC.length)]) : filler;
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(response.status, response.body).toBe(202);
    const image = JSON.parse(response.body) as { id: string };
    const client = s3Client(app.deps.config);
    try {
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: `uploads/${org}/${inspectionId}/${image.id}` }),
      );
      expect(head.ContentLength).toBe(GiB);
    } finally {
      client.destroy();
    }
    const { rows } = await app.deps.db.query<{ size_bytes: string }>("SELECT size_bytes FROM images WHERE id = $1", [
      image.id,
    ]);
    expect(rows[0]?.size_bytes).toBe(String(GiB));
    const growth = peak - baseline;
    console.info(
      `1 GiB upload: RSS baseline ${(baseline / MiB).toFixed(0)} MiB, peak growth ${(growth / MiB).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(100 * MiB);
  }, 240_000);
});
