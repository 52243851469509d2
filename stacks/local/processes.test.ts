import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ChildExited } from "./processes.js";

describe("a service that exits on its own", () => {
  it("is named with how it ended, what that means, and the end of its log", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ndt-exited-"));
    const log = join(dir, "detector.log");
    await writeFile(log, "starting\nmodel loaded\n");
    try {
      const killed = new ChildExited("detector", null, "SIGKILL", log).message;
      expect(killed).toContain(
        "detector exited (signal SIGKILL), killed from outside (kill -9, or the kernel out of memory)",
      );
      expect(killed).toContain("  | model loaded");
      const failed = new ChildExited("files", 1, null, log).message;
      expect(failed).toMatch(/^files exited \(code 1\); the stack stops\. Its log /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
