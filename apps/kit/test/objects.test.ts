/** The ObjectStore contract against S3 (s3rver through the real AWS SDK) and the directory store. */
import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { DirectoryObjectStore } from "../src/objects/directory.js";
import { S3ObjectStore } from "../src/objects/s3.js";
import { objectStoreContract, testS3 } from "../src/testing/index.js";

const BUCKET = "contract-objects";

async function s3rverStore() {
  const s3 = await testS3([BUCKET]);
  const store = new S3ObjectStore(s3.settings, BUCKET);
  return {
    store,
    settings: s3.settings,
    async cleanup() {
      await store.close();
      await s3.stop();
    },
  };
}

objectStoreContract("S3ObjectStore (s3rver)", await s3rverStore());

describe("S3ObjectStore", () => {
  it("checks readiness by listing under its prefix, which a prefix-scoped grant allows (HeadBucket it would deny)", async () => {
    const s3 = await testS3([BUCKET]);
    const store = new S3ObjectStore(s3.settings, BUCKET, { prefix: "uploads/" });
    const sent: { command: string; input: unknown }[] = [];
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push({ command: String(context.commandName), input: args.input });
        return next(args);
      },
      { step: "initialize", name: "recordCommands" },
    );
    try {
      // more keys than the listing asks for: a truncated listing must work too
      for (const key of ["uploads/a.png", "uploads/b.png"])
        await store.put(key, Readable.from([Buffer.from(key)]), { contentType: "image/png" });
      sent.length = 0;
      await store.ping();
      expect(sent).toEqual([
        { command: "ListObjectsCommand", input: { Bucket: BUCKET, Prefix: "uploads/", MaxKeys: 1 } },
      ]);
      const missing = new S3ObjectStore(s3.settings, "no-such-bucket", { prefix: "uploads/" });
      await expect(missing.ping()).rejects.toThrow(/bucket/i);
      await missing.close();
    } finally {
      await store.close();
      await s3.stop();
    }
  });

  it("fails loudly on a bucket that does not exist: a missing bucket is not a missing object", async () => {
    const { store, settings, cleanup } = await s3rverStore();
    const wrong = new S3ObjectStore(settings, "no-such-bucket");
    try {
      await expect(wrong.get("any/key")).rejects.toThrow(/bucket/i);
      await expect(store.get("any/key")).resolves.toBeNull();
    } finally {
      await wrong.close();
      await cleanup();
    }
  });
});

async function directoryStore() {
  const root = await mkdtemp(join(tmpdir(), "kit-objects-"));
  return {
    store: new DirectoryObjectStore(join(root, BUCKET)),
    async cleanup() {
      await rm(root, { recursive: true, force: true });
    },
  };
}

objectStoreContract("DirectoryObjectStore", await directoryStore());

describe("DirectoryObjectStore", () => {
  it("removes the old temporary files of puts that never finished (a crash), not the recent ones", async () => {
    const root = await mkdtemp(join(tmpdir(), "kit-objects-tmp-"));
    try {
      const store = new DirectoryObjectStore(root);
      await store.ping();
      const stale = join(root, ".tmp", "123-dead.bin");
      const fresh = join(root, ".tmp", "456-busy.bin");
      await writeFile(stale, "partial");
      await writeFile(fresh, "being written");
      const dayAgo = new Date(Date.now() - 24 * 60 * 60 * 1000);
      await utimes(stale, dayAgo, dayAgo);
      expect(await store.sweepTemporary()).toBe(1);
      expect(await readdir(join(root, ".tmp"))).toEqual(["456-busy.bin"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
