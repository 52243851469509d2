/**
 * Embedded adapter of the `ObjectStore` port: files under a root directory, for the local stack (no S3 there).
 *
 * - an object is `<root>/<encoded key>.bin` with its content type in the sidecar `<encoded key>.json`; the key is
 *   validated (`assertObjectKey`) and percent-encoded into one file name, so no key can reach outside the root;
 * - `put` streams the body into a temporary file in `<root>/.tmp`, flushes it to disk, then renames it into place:
 *   rename is atomic on one file system, so readers see the old object or the whole new one, never a part, and a
 *   body that fails leaves only a temporary file, which is removed;
 * - memory stays bounded: one chunk at a time is written.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { assertObjectKey } from "./keys.js";
import type { ObjectInfo, ObjectStore, PutOptions } from "./port.js";

const isMissing = (err: unknown) => (err as { code?: unknown }).code === "ENOENT";

export class DirectoryObjectStore implements ObjectStore {
  private readonly tmp: string;
  private made: Promise<void> | undefined;

  constructor(readonly root: string) {
    this.tmp = join(root, ".tmp");
  }

  private ready(): Promise<void> {
    this.made ??= mkdir(this.tmp, { recursive: true })
      .then(() => this.sweepTemporary())
      .then(() => undefined);
    return this.made;
  }

  /**
   * Remove temporary files a crashed process left (a put that never finished). Only old ones: another process
   * may be writing a large object right now.
   */
  async sweepTemporary(olderThanMs = 6 * 60 * 60 * 1000): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
      const path = join(this.tmp, name);
      const info = await stat(path).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > olderThanMs) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  private paths(key: string) {
    assertObjectKey(key);
    const name = encodeURIComponent(key);
    return { data: join(this.root, `${name}.bin`), meta: join(this.root, `${name}.json`) };
  }

  private async writeFileSynced(path: string, chunks: AsyncIterable<Buffer> | Buffer): Promise<number> {
    const file = await open(path, "wx", 0o600);
    let size = 0;
    try {
      if (Buffer.isBuffer(chunks)) {
        await file.write(chunks);
        size = chunks.length;
      } else {
        for await (const chunk of chunks) {
          const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
          // write() may write less than asked on some file systems: loop until the chunk is out
          for (let offset = 0; offset < bytes.length;) {
            const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset);
            offset += bytesWritten;
          }
          size += bytes.length;
        }
      }
      await file.sync();
    } finally {
      await file.close();
    }
    return size;
  }

  async put(key: string, body: AsyncIterable<Buffer>, opts: PutOptions): Promise<ObjectInfo> {
    const { data, meta } = this.paths(key);
    await this.ready();
    const stamp = `${process.pid}-${randomBytes(8).toString("hex")}`;
    const tmpData = join(this.tmp, `${stamp}.bin`);
    const tmpMeta = join(this.tmp, `${stamp}.json`);
    try {
      const size = await this.writeFileSynced(tmpData, body);
      await this.writeFileSynced(tmpMeta, Buffer.from(JSON.stringify({ contentType: opts.contentType })));
      // the sidecar first: a reader finds the data file only once its content type is in place
      await rename(tmpMeta, meta);
      await rename(tmpData, data);
      return { size, contentType: opts.contentType };
    } catch (err) {
      await rm(tmpData, { force: true });
      await rm(tmpMeta, { force: true });
      throw err;
    }
  }

  private async contentType(meta: string): Promise<string> {
    try {
      const parsed = JSON.parse(await readFile(meta, "utf8")) as { contentType?: unknown };
      return typeof parsed.contentType === "string" ? parsed.contentType : "application/octet-stream";
    } catch (err) {
      if (isMissing(err)) return "application/octet-stream";
      throw err;
    }
  }

  async get(key: string): Promise<{ info: ObjectInfo; body: Readable } | null> {
    const { data, meta } = this.paths(key);
    let file;
    try {
      file = await open(data, "r");
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    try {
      // the open descriptor keeps this version's bytes even if a put replaces the file meanwhile
      const { size } = await file.stat();
      const contentType = await this.contentType(meta);
      const body = createReadStream("", { fd: file, autoClose: true, highWaterMark: 256 * 1024 });
      return { info: { size, contentType }, body };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const { data, meta } = this.paths(key);
    try {
      const { size } = await stat(data);
      return { size, contentType: await this.contentType(meta) };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const { data, meta } = this.paths(key);
    for (const path of [data, meta]) {
      await unlink(path).catch((err) => {
        if (!isMissing(err)) throw err;
      });
    }
  }

  async ping(): Promise<void> {
    await this.ready();
  }

  async close(): Promise<void> {}
}
