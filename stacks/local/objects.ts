/**
 * Object storage of the local stack when the user points S3_ENDPOINT at a server (CONTRACTS §1): the stack's buckets
 * are made there if missing. Otherwise the services use kit's directory store under `<data>/objects`.
 */
import { CreateBucketCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { LocalStackError } from "./errors.js";

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
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
