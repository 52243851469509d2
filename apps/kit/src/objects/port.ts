/**
 * The object-store port: image uploads, report PDFs. The real adapter is S3 (AWS SDK v3, multipart for large
 * bodies; any S3-compatible server such as s3rver in tests); the local stack's embedded adapter is a directory.
 * Both pass the same contract suite (`@ndt/kit/testing`). Keys are made by the server, never by a user.
 */
import type { Readable } from "node:stream";

export interface PutOptions {
  contentType: string;
}

export interface ObjectInfo {
  size: number;
  contentType: string;
}

export interface ObjectStore {
  /**
   * Stream `body` to `key`. Memory stays bounded whatever the size (S3: multipart parts). When `body` throws, the
   * partial object is discarded and the error is rethrown as is. The object appears whole or not at all.
   */
  put(key: string, body: AsyncIterable<Buffer>, opts: PutOptions): Promise<ObjectInfo>;
  /** The object's bytes as a stream; null when it does not exist. */
  get(key: string): Promise<{ info: ObjectInfo; body: Readable } | null>;
  head(key: string): Promise<ObjectInfo | null>;
  /** Remove the object; no error when it is already gone. */
  delete(key: string): Promise<void>;
  /** Throws unless the store answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
