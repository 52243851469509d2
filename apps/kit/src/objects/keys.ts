import { Type } from "@sinclair/typebox";

/**
 * Object keys every adapter accepts: server-made paths of plain segments. The directory adapter maps keys to file
 * names, so a key must never be able to name anything outside its root; S3 checks the same rule so the two adapters
 * accept exactly the same keys.
 */
export class InvalidObjectKeyError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key.slice(0, 100))}: ${reason}`);
    this.name = "InvalidObjectKeyError";
  }
}

const SEGMENT_SOURCE = "[A-Za-z0-9_][A-Za-z0-9._=+@-]*";
const SEGMENT = new RegExp(`^${SEGMENT_SOURCE}$`);
/** Longest key: its encoded file name must fit the usual 255-byte limit with the adapter's suffixes. */
export const MAX_OBJECT_KEY_LENGTH = 200;

export function assertObjectKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new InvalidObjectKeyError(String(key), "empty");
  if (key.length > MAX_OBJECT_KEY_LENGTH) {
    throw new InvalidObjectKeyError(key, `longer than ${MAX_OBJECT_KEY_LENGTH} characters`);
  }
  for (const segment of key.split("/")) {
    if (!SEGMENT.test(segment)) {
      throw new InvalidObjectKeyError(
        key,
        "segments are letters, digits and ._=+@- (not starting with a dot or dash), separated by single slashes",
      );
    }
  }
}

/**
 * A key prefix as config: empty, or segments of object keys each ending in "/" (the part of a bucket a service's
 * grant covers).
 */
export const ObjectKeyPrefix = (description: string) =>
  Type.String({ pattern: `^(${SEGMENT_SOURCE}/)*$`, default: "", description });
