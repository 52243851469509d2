/**
 * Object storage of the local stack when a service cannot use kit's directory store yet, or the user pointed
 * S3_ENDPOINT at a server: make sure the stack's buckets exist. Without S3_ENDPOINT an s3rver (an S3-compatible
 * server from npm, files under `<data>/s3`) is started in this process.
 */
import { CreateBucketCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { LocalStackError } from "./errors.js";

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface EmbeddedS3 extends S3Endpoint {
  close(): Promise<void>;
}

/** s3rver on 127.0.0.1:`port`, storing under `dir`, with `buckets` made. */
export async function startEmbeddedS3(dir: string, port: number, buckets: readonly string[]): Promise<EmbeddedS3> {
  const { default: S3rver } = await import("s3rver");
  const server = new S3rver({
    address: "127.0.0.1",
    port,
    directory: dir,
    silent: true,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    // s3rver's fixed credentials
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    region: "us-east-1",
    close: () => server.close(),
  };
}

/** Creates each bucket that does not exist yet on a real S3-compatible server. */
export async function ensureBuckets(target: S3Endpoint, buckets: readonly string[]): Promise<void> {
  const s3 = new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    for (const Bucket of buckets) {
      try {
        await s3.send(new HeadBucketCommand({ Bucket }));
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) {
          throw new LocalStackError(
            `S3_ENDPOINT ${target.endpoint}: bucket ${Bucket}: ${(err as Error).message || (err as Error).name}`,
          );
        }
        await s3.send(new CreateBucketCommand({ Bucket }));
      }
    }
  } finally {
    s3.destroy();
  }
}
