import { lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hydrateLibraryLinks } from "./postgres.js";

describe("the embedded PostgreSQL's library links", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("are made from the package's list when npm skipped its install script, relative, and kept when present", async () => {
    dir = await mkdtemp(join(tmpdir(), "ndt-pglinks-"));
    await mkdir(join(dir, "native", "lib"), { recursive: true });
    await writeFile(join(dir, "native", "lib", "libx.so.1.2"), "library");
    const links = [
      { source: "native/lib/libx.so.1.2", target: "native/lib/libx.so.1" },
      { source: "native/lib/libx.so.1.2", target: "native/lib/libx.so" },
    ];
    await writeFile(join(dir, "native", "pg-symlinks.json"), JSON.stringify(links));

    await hydrateLibraryLinks(join(dir, "native"));
    for (const { target } of links) {
      expect((await lstat(join(dir, target))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(dir, target))).toBe("libx.so.1.2");
      expect(await readFile(join(dir, target), "utf8")).toBe("library");
    }
    // a second start finds them and changes nothing
    await hydrateLibraryLinks(join(dir, "native"));
    expect(await readlink(join(dir, "native", "lib", "libx.so"))).toBe("libx.so.1.2");
  });
});
