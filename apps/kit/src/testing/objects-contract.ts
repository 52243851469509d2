/**
 * The `ObjectStore` contract: the same assertions against every adapter (S3 through s3rver, and the directory
 * store), so uploads and reports behave the same in the cloud and on the local stack.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidObjectKeyError } from "../objects/keys.js";
import type { ObjectStore } from "../objects/port.js";

export interface ObjectStoreHarness {
  /** The adapter under test, on an empty bucket or directory. */
  store: ObjectStore;
  cleanup?(): Promise<void>;
}

const MiB = 1024 * 1024;

async function* chunks(...parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield p;
}

/** `total` deterministic bytes in `chunk`-sized pieces, generated as they are read (never all in memory). */
async function* generated(total: number, chunk = MiB, hash?: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  let sent = 0;
  let n = 0;
  while (sent < total) {
    const size = Math.min(chunk, total - sent);
    const piece = Buffer.alloc(size, n++ % 251);
    hash?.update(piece);
    sent += size;
    yield piece;
  }
}

async function* failingAfter(bytes: number, error: Error): AsyncGenerator<Buffer> {
  yield* generated(bytes);
  throw error;
}

async function readAll(body: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(parts);
}

const uniqueKey = (name: string) => `contract/${randomBytes(6).toString("hex")}/${name}`;

export function objectStoreContract(name: string, harness: ObjectStoreHarness | undefined) {
  describe.skipIf(!harness)(`ObjectStore contract: ${name}`, () => {
    afterAll(async () => {
      await harness?.cleanup?.();
    });
    const store = () => harness!.store;

    it("put, head, get and delete an object; the content type is kept", async () => {
      const key = uniqueKey("image.png");
      const data = randomBytes(300_000);
      const info = await store().put(key, chunks(data.subarray(0, 1000), data.subarray(1000)), {
        contentType: "image/png",
      });
      expect(info).toEqual({ size: data.length, contentType: "image/png" });
      expect(await store().head(key)).toEqual({ size: data.length, contentType: "image/png" });
      const got = await store().get(key);
      expect(got?.info).toEqual({ size: data.length, contentType: "image/png" });
      expect((await readAll(got!.body)).equals(data)).toBe(true);

      const replaced = Buffer.from("%PDF-1.7 replaced");
      await store().put(key, chunks(replaced), { contentType: "application/pdf" });
      const again = await store().get(key);
      expect(again?.info).toEqual({ size: replaced.length, contentType: "application/pdf" });
      expect((await readAll(again!.body)).equals(replaced)).toBe(true);

      await store().delete(key);
      expect(await store().head(key)).toBeNull();
      expect(await store().get(key)).toBeNull();
      await store().delete(key); // already gone: no error
      await store().ping();
    });

    it("answers null for a missing object and stores an empty one", async () => {
      expect(await store().get(uniqueKey("missing"))).toBeNull();
      expect(await store().head(uniqueKey("missing"))).toBeNull();
      const key = uniqueKey("empty");
      expect(await store().put(key, chunks(), { contentType: "text/plain" })).toEqual({
        size: 0,
        contentType: "text/plain",
      });
      const got = await store().get(key);
      expect(got?.info.size).toBe(0);
      expect((await readAll(got!.body)).length).toBe(0);
    });

    it("a body that fails leaves nothing (small or multipart-sized), rethrows its error, keeps an older object", async () => {
      for (const size of [1000, 12 * MiB]) {
        const key = uniqueKey(`broken-${size}`);
        const boom = new Error(`client went away after ${size} bytes`);
        await expect(store().put(key, failingAfter(size, boom), { contentType: "image/png" })).rejects.toBe(boom);
        expect(await store().head(key)).toBeNull();
        expect(await store().get(key)).toBeNull();
      }
      const key = uniqueKey("kept");
      await store().put(key, chunks(Buffer.from("first version")), { contentType: "text/plain" });
      const boom = new Error("second upload failed");
      await expect(store().put(key, failingAfter(6 * MiB, boom), { contentType: "image/png" })).rejects.toBe(boom);
      const got = await store().get(key);
      expect(got?.info.contentType).toBe("text/plain");
      expect((await readAll(got!.body)).toString()).toBe("first version");
    });

    it("streams a large body in and out", async () => {
      const key = uniqueKey("large.bin");
      const total = 64 * MiB + 12_345;
      const written = createHash("sha256");
      const info = await store().put(key, generated(total, 256 * 1024, written), {
        contentType: "application/octet-stream",
      });
      expect(info.size).toBe(total);
      const got = await store().get(key);
      expect(got?.info.size).toBe(total);
      const read = createHash("sha256");
      let size = 0;
      for await (const c of got!.body) {
        const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
        size += b.length;
        read.update(b);
      }
      expect(size).toBe(total);
      expect(read.digest("hex")).toBe(written.digest("hex"));
      await store().delete(key);
    });

    it("rejects keys that could escape or are not plain paths", async () => {
      for (const key of [
        "",
        "../etc/passwd",
        "a/../../b",
        "/abs",
        "a//b",
        "a/./b",
        "a\\b",
        "sp ace",
        "a/",
        ".hidden",
      ]) {
        await expect(
          store().put(key, chunks(Buffer.from("x")), { contentType: "text/plain" }),
          key,
        ).rejects.toBeInstanceOf(InvalidObjectKeyError);
        await expect(store().get(key), key).rejects.toBeInstanceOf(InvalidObjectKeyError);
      }
    });
  });
}
