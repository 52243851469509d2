/**
 * How every service picks its object-store adapter: `OBJECT_STORE=s3` (AWS S3 or an S3-compatible endpoint, the
 * default) or `directory` (the local stack: one folder per bucket under OBJECT_STORE_DIR).
 */
import { join, resolve } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { ConfigError } from "../config.js";
import { DirectoryObjectStore } from "./directory.js";
import { assertObjectKey } from "./keys.js";
import type { ObjectStore } from "./port.js";
import { S3Config, S3ObjectStore } from "./s3.js";

export const ObjectStoreConfig = {
  OBJECT_STORE: Type.Union([Type.Literal("s3"), Type.Literal("directory")], { default: "s3" }),
  /** Root of the directory store (one sub-folder per bucket); required when OBJECT_STORE=directory. */
  OBJECT_STORE_DIR: Type.Optional(Type.String({ minLength: 1 })),
  /** The service's bucket (or its folder under OBJECT_STORE_DIR); a service with several passes each by name. */
  S3_BUCKET: Type.Optional(Type.String({ minLength: 3 })),
  ...S3Config,
};
export const ObjectStoreConfigSchema = Type.Object(ObjectStoreConfig);
export type ObjectStoreSettings = Static<typeof ObjectStoreConfigSchema>;

/**
 * The store of `bucket` (default: S3_BUCKET); `prefix` is the key prefix the service may list (its readiness check
 * lists there). The caller closes it.
 */
export function openObjectStore(
  config: ObjectStoreSettings,
  opts: { bucket?: string; prefix?: string } = {},
): ObjectStore {
  const bucket = opts.bucket ?? config.S3_BUCKET;
  if (!bucket) throw new ConfigError([{ variable: "S3_BUCKET", reason: "is required" }]);
  if (config.OBJECT_STORE === "s3")
    return new S3ObjectStore(config, bucket, opts.prefix ? { prefix: opts.prefix } : {});
  if (!config.OBJECT_STORE_DIR) {
    throw new ConfigError([{ variable: "OBJECT_STORE_DIR", reason: "is required when OBJECT_STORE=directory" }]);
  }
  try {
    assertObjectKey(bucket); // one plain folder name
  } catch {
    throw new ConfigError([{ variable: "S3_BUCKET", reason: `${JSON.stringify(bucket)} is not a plain name` }]);
  }
  if (bucket.includes("/")) throw new ConfigError([{ variable: "S3_BUCKET", reason: "must not contain a slash" }]);
  return new DirectoryObjectStore(join(resolve(config.OBJECT_STORE_DIR), bucket));
}
