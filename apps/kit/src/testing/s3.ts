/**
 * An S3-compatible server for tests: s3rver on a free port in a temporary directory, reached through the real AWS
 * SDK (never a hand-made fake). Its settings feed `S3ObjectStore` directly or a service's env.
 */
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";
import type { S3Settings } from "../objects/s3.js";

export interface TestS3 {
  endpoint: string;
  /** Typed settings for `new S3ObjectStore(settings, bucket)`. */
  settings: S3Settings;
  /** The same as service env variables (`S3_ENDPOINT`, credentials, path style). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** s3rver with `buckets` created. */
export async function testS3(buckets: readonly string[]): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), "ndt-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const { port } = (await server.run()) as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const settings: S3Settings = {
    S3_ENDPOINT: endpoint,
    S3_REGION: "us-east-1",
    S3_ACCESS_KEY_ID: "S3RVER",
    S3_SECRET_ACCESS_KEY: "S3RVER",
    S3_FORCE_PATH_STYLE: true,
    S3_PART_BYTES: 5 * 1024 * 1024,
    S3_QUEUE_SIZE: 2,
  };
  return {
    endpoint,
    settings,
    env: {
      S3_ENDPOINT: endpoint,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: "S3RVER",
      S3_SECRET_ACCESS_KEY: "S3RVER",
      S3_FORCE_PATH_STYLE: "true",
    },
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
