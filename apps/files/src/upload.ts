/**
 * Streaming upload to object storage (GUARDRAILS P7): the type comes from the magic bytes, never from the header;
 * the size limit is enforced on the bytes as they pass; memory stays bounded whatever the file's size (the
 * `ObjectStore` streams: S3 multipart parts, or a file written chunk by chunk); the object key is made by the server.
 */
import { HttpError, type ObjectStore } from "@ndt/kit";
export type ImageType = "image/png" | "image/jpeg";

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG = Buffer.from([0xff, 0xd8, 0xff]);
/** Bytes needed to decide. */
export const SNIFF_BYTES = PNG.length;

/** The image type of a file starting with `head`, or undefined when it is neither PNG nor JPEG. */
export function sniffImageType(head: Buffer): ImageType | undefined {
  if (head.length >= PNG.length && head.subarray(0, PNG.length).equals(PNG)) return "image/png";
  if (head.length >= JPEG.length && head.subarray(0, JPEG.length).equals(JPEG)) return "image/jpeg";
  return undefined;
}

export const unsupportedMediaType = () =>
  new HttpError(415, "unsupported_media_type", "The file is not a PNG or JPEG image");
export const payloadTooLarge = (max: number) =>
  new HttpError(413, "payload_too_large", `The file is larger than ${max} bytes`);

export interface StoredObject {
  contentType: ImageType;
  size: number;
}

export interface PutImageOptions {
  objects: ObjectStore;
  /** Server-made key. */
  key: string;
  maxBytes: number;
}

/**
 * Read `source` to the object `key`. Throws 415 before anything is written when the first bytes are not an image,
 * 413 as soon as more than `maxBytes` have passed (the store discards the partial object).
 */
export async function putImage(source: AsyncIterable<Buffer | string>, opts: PutImageOptions): Promise<StoredObject> {
  const it = source[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let total = 0;
  let exhausted = false;
  while (total < SNIFF_BYTES) {
    const next = await it.next();
    if (next.done) {
      exhausted = true;
      break;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    chunks.push(chunk);
    total += chunk.length;
  }
  const head = Buffer.concat(chunks);
  const contentType = sniffImageType(head);
  if (!contentType) throw unsupportedMediaType();
  if (total > opts.maxBytes) throw payloadTooLarge(opts.maxBytes);

  async function* rest(): AsyncGenerator<Buffer> {
    yield head;
    if (exhausted) return;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      total += chunk.length;
      if (total > opts.maxBytes) throw payloadTooLarge(opts.maxBytes);
      yield chunk;
    }
  }

  const stored = await opts.objects.put(opts.key, rest(), { contentType });
  return { contentType, size: stored.size };
}
