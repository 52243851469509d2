import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { drawRange, PortClaims } from "./ports.js";
import { portIsFree } from "./processes.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ndt-ports-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

describe("the ports the local stack chooses for its children", () => {
  it("come from below the kernel's ephemeral range, which it hands to listen(0) and outgoing connections", async () => {
    const rangeFile = join(dir, "ip_local_port_range");
    await writeFile(rangeFile, "32768\t60999\n");
    expect(drawRange(rangeFile)).toEqual([10_000, 32_768]);
    expect(drawRange(join(dir, "absent"))).toEqual([10_000, 49_152]);
    const [, ephemeralLow] = drawRange();
    const claims = new PortClaims(dir);
    try {
      for (let i = 0; i < 20; i++) {
        const port = await claims.take();
        expect(port).toBeGreaterThanOrEqual(10_000);
        expect(port).toBeLessThan(ephemeralLow);
        expect(await portIsFree(port)).toBe(true);
      }
    } finally {
      claims.release();
    }
  });

  it("are never the same for two stacks started at once, even while the child has not bound it yet", async () => {
    // a narrow range: two stacks drawing freely from it would collide at once
    const one = new PortClaims(dir, [20_000, 20_004]);
    const other = new PortClaims(dir, [20_000, 20_004]);
    try {
      const first = await Promise.all([1, 2].map(() => one.take()));
      const second = await Promise.all([1, 2].map(() => other.take()));
      const all = [...first, ...second];
      // the range may hold a busy port: the rest come from the kernel, still claimed
      expect(new Set(all).size).toBe(4);
    } finally {
      one.release();
      other.release();
    }
  });

  it("take the topology's port when free and unclaimed, another when a stack claims it or it is busy", async () => {
    const one = new PortClaims(dir);
    const other = new PortClaims(dir);
    try {
      const preferred = await one.take();
      one.release();
      expect(await one.take(preferred)).toBe(preferred);
      expect(await other.take(preferred)).not.toBe(preferred);
      one.release();
      expect(await other.take(preferred)).toBe(preferred);
      other.release();
      const busy = await listenOn(preferred);
      try {
        expect(await one.take(preferred)).not.toBe(preferred);
      } finally {
        busy.close();
      }
    } finally {
      one.release();
      other.release();
    }
  });

  it("ignore a claim left by a stack that is gone (killed outright)", async () => {
    const claims = new PortClaims(dir);
    try {
      const port = await claims.take();
      claims.release();
      // pid 2^22 + 1 is above Linux's pid_max: no process has it
      await writeFile(join(dir, String(port)), `${2 ** 22 + 1}\n`);
      expect(await claims.take(port)).toBe(port);
    } finally {
      claims.release();
    }
  });

  it("sweep away, at a stack's first claim, the claims of stacks that are gone, and only those", async () => {
    const live = new PortClaims(dir);
    try {
      const held = await live.take();
      await writeFile(join(dir, "10001"), `${2 ** 22 + 1}\n`);
      await writeFile(join(dir, "10002"), `${2 ** 22 + 2}\n`);
      const next = new PortClaims(dir);
      const taken = await next.take();
      expect((await readdir(dir)).sort()).toEqual([String(held), String(taken)].sort());
      next.release();
    } finally {
      live.release();
    }
  });
});
