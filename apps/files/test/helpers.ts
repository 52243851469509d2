/**
 * Shared setup of the files tests: real PostgreSQL (fresh database), Redis (unique prefix), RabbitMQ (unique queue
 * names); s3rver and the token issuer come from @ndt/kit/testing (testS3, testS3Process, testIssuer).
 * Like kit's helpers: an unreachable server fails under CI and skips with a printed reason otherwise.
 */
import { randomBytes } from "node:crypto";
import { serverUnavailable, type TestDatabase, type TestIssuer, type TestRedis, type TestS3 } from "@ndt/kit/testing";
import amqp, { type Channel, type ChannelModel, type GetMessage } from "amqplib";
import { type FilesConfig, loadFilesConfig } from "../src/config.js";

export const BUCKET = "uploads-test";

export interface TestAmqp {
  url: string;
  /** A unique queue name for this test file (its DLQ is `<queue>.dlq`). */
  queue: string;
  connection: ChannelModel;
  channel: Channel;
  /** The next message on `queue`, or undefined after `timeoutMs`. */
  next(timeoutMs?: number): Promise<GetMessage | undefined>;
  cleanup(): Promise<void>;
}

export async function testAmqp(label: string): Promise<TestAmqp | undefined> {
  const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
  let connection: ChannelModel;
  try {
    connection = await amqp.connect(url, { timeout: 3_000 });
  } catch (err) {
    return serverUnavailable(`RabbitMQ (${url})`, err);
  }
  let channel = await connection.createChannel();
  channel.on("error", () => undefined);
  const queue = `test.${label}.${randomBytes(4).toString("hex")}`;
  return {
    url,
    queue,
    connection,
    get channel() {
      return channel;
    },
    async next(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        // a get on a queue not declared yet closes the channel: open another
        const msg = await channel.get(queue, { noAck: true }).catch(async () => {
          channel = await connection.createChannel();
          channel.on("error", () => undefined);
          return false as const;
        });
        if (msg) return msg;
        await new Promise((r) => setTimeout(r, 50));
      }
      return undefined;
    },
    async cleanup() {
      for (const q of [queue, `${queue}.dlq`]) await channel.deleteQueue(q).catch(() => undefined);
      await channel.deleteExchange(`${queue}.dlx`).catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}

export function filesConfig(
  env: { db: TestDatabase; kv: TestRedis; mq: TestAmqp; s3: Pick<TestS3, "env">; issuer: TestIssuer },
  overrides: Record<string, string> = {},
): FilesConfig {
  return loadFilesConfig({
    DATABASE_URL: env.db.url,
    REDIS_URL: env.kv.url,
    REDIS_KEY_PREFIX: env.kv.prefix,
    JWKS_URL: env.issuer.jwksUrl,
    ...env.s3.env,
    S3_BUCKET_UPLOADS: BUCKET,
    S3_PREFIX_UPLOADS: "uploads/",
    AMQP_URL: env.mq.url,
    DETECTIONS_QUEUE: env.mq.queue,
    OUTBOX_POLL_MS: "100",
    LOG_LEVEL: "silent",
    ...overrides,
  });
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);

/** Bytes that start like a PNG / JPEG (the service sniffs magic bytes; decoding is the detector's job). */
export const fakePng = (size = 10_000) => Buffer.concat([PNG_MAGIC, randomBytes(size - PNG_MAGIC.length)]);
export const fakeJpeg = (size = 10_000) => Buffer.concat([JPEG_MAGIC, randomBytes(size - JPEG_MAGIC.length)]);

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export function multipartBody(field: string, filename: string, type: string, data: Buffer) {
  return multipartForm([{ name: field, filename, type, data }]);
}

export interface FormPart {
  /** Left out: a part without `name`. */
  name?: string;
  /** Left out: no `filename` (what `curl -F 'file=<x.png'` and plain form fields send). */
  filename?: string;
  /** Left out: no Content-Type header on the part. */
  type?: string;
  data: Buffer;
}

/** A multipart/form-data body of `parts`, with what RFC 2046 allows before the first boundary and after the last. */
export function multipartForm(parts: FormPart[], framing: { preamble?: Buffer; epilogue?: Buffer } = {}) {
  const boundary = `----ndt${randomBytes(8).toString("hex")}`;
  const payload = Buffer.concat([
    ...(framing.preamble ? [framing.preamble, Buffer.from("\r\n")] : []),
    ...parts.flatMap((part) => [
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data` +
          (part.name === undefined ? "" : `; name="${part.name}"`) +
          (part.filename === undefined ? "" : `; filename="${part.filename}"`) +
          "\r\n" +
          (part.type === undefined ? "" : `Content-Type: ${part.type}\r\n`) +
          "\r\n",
      ),
      part.data,
      Buffer.from("\r\n"),
    ]),
    Buffer.from(`--${boundary}--\r\n`),
    ...(framing.epilogue ? [framing.epilogue] : []),
  ]);
  return { payload, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}
