/**
 * P7 at scale: a 1 GiB image streamed through the HTTP route to S3 while the service's resident memory is sampled;
 * memory must not grow with the file. The files service runs as its own process (as in production) and so does
 * s3rver, so the sampled RSS is the service's alone, not the test client's or the S3 server's. The bytes are
 * generated as they are sent (a PNG signature, then filler), so the client holds no more than one chunk.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { s3Client } from "@ndt/kit";
import {
  testDatabase,
  testIssuer,
  type TestIssuer,
  testRedis,
  testS3Process,
  type TestS3Process,
} from "@ndt/kit/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUCKET, testAmqp, waitFor } from "./helpers.js";

const db = await testDatabase("files_large");
const kv = await testRedis("files_large");
const mq = await testAmqp("files_large");

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

const rssOf = (pid: number) =>
  Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.skipIf(!db || !kv || !mq)("1 GiB upload", () => {
  let s3: TestS3Process;
  let issuer: TestIssuer;
  let files: ChildProcess;
  let port: number;

  beforeAll(async () => {
    s3 = await testS3Process([BUCKET]);
    issuer = await testIssuer();
    port = await freePort();
    files = spawn(process.execPath, ["--import", "tsx", "apps/files/src/server.ts"], {
      cwd: repoRoot,
      env: {
        ...process.env,
        HOST: "127.0.0.1",
        PORT: String(port),
        LOG_LEVEL: "warn",
        DATABASE_URL: db!.url,
        REDIS_URL: kv!.url,
        REDIS_KEY_PREFIX: kv!.prefix,
        AMQP_URL: mq!.url,
        DETECTIONS_QUEUE: mq!.queue,
        JWKS_URL: issuer.jwksUrl,
        ...s3.env,
        S3_BUCKET_UPLOADS: BUCKET,
        S3_PREFIX_UPLOADS: "uploads/",
        // the override that allows 1 GiB (the default limit is 50 MiB)
        UPLOAD_MAX_BYTES: String(GiB + MiB),
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    await waitFor(async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
      } catch {
        return false;
      }
    }, 60_000);
  });

  afterAll(async () => {
    if (files && files.exitCode === null) {
      files.kill("SIGTERM");
      await new Promise((r) => files.once("exit", r));
    }
    await s3?.stop();
    await issuer?.stop();
    await mq?.cleanup();
    await kv?.cleanup();
    await db?.drop();
  });

  it("streams 1 GiB through the route to S3 with the service's RSS growing by less than 100 MiB", async () => {
    const org = randomUUID();
    const token = await issuer.token({ org, role: "inspector" });
    const created = await fetch(`http://127.0.0.1:${port}/api/v1/inspections`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "large" }),
    });
    const inspectionId = ((await created.json()) as { id: string }).id;

    const pid = files.pid!;
    const baseline = rssOf(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 20);

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
    }).finally(() => clearInterval(sampler));
    peak = Math.max(peak, rssOf(pid));

    expect(response.status, response.body).toBe(202);
    const image = JSON.parse(response.body) as { id: string };
    const client = s3Client(s3.settings);
    try {
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: `uploads/${org}/${inspectionId}/${image.id}` }),
      );
      expect(head.ContentLength).toBe(GiB);
    } finally {
      client.destroy();
    }
    const sql = new pg.Client({ connectionString: db!.url });
    await sql.connect();
    try {
      const { rows } = await sql.query("SELECT size_bytes FROM images WHERE id = $1", [image.id]);
      expect(rows[0]?.size_bytes).toBe(String(GiB));
    } finally {
      await sql.end();
    }
    const growth = peak - baseline;
    console.info(
      `1 GiB upload: files process RSS ${(baseline / MiB).toFixed(0)} MiB before, peak growth ${(growth / MiB).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(100 * MiB);
  }, 240_000);
});
