/** Dynamic batching: full batches at once, partial ones after the wait, none while no runner is free. */
import { describe, expect, it } from "vitest";
import { Batcher } from "../src/batcher.js";

function harness(maxBatch: number, maxWaitMs: number, capacity = 1) {
  const batches: number[][] = [];
  let free = capacity;
  const releases: (() => void)[] = [];
  const batcher: Batcher<number, number> = new Batcher<number, number>({
    maxBatch,
    maxWaitMs,
    capacity: () => free,
    run: (items) => {
      batches.push(items);
      free--;
      return new Promise((resolve) =>
        releases.push(() => {
          free++;
          resolve(items.map((i) => i * 10));
          batcher.pump();
        }),
      );
    },
  });
  return { batcher, batches, releases };
}

describe("Batcher", () => {
  it("runs a full batch at once and gives each item its own result", async () => {
    const { batcher, batches, releases } = harness(3, 60_000);
    const results = [1, 2, 3].map((i) => batcher.submit(i));
    expect(batches).toEqual([[1, 2, 3]]);
    releases.shift()!();
    expect(await Promise.all(results)).toEqual([10, 20, 30]);
  });

  it("runs a partial batch once its first item has waited maxWaitMs", async () => {
    const { batcher, batches, releases } = harness(8, 30);
    const a = batcher.submit(1);
    const b = batcher.submit(2);
    expect(batches).toEqual([]);
    await new Promise((r) => setTimeout(r, 80));
    expect(batches).toEqual([[1, 2]]);
    releases.shift()!();
    expect(await Promise.all([a, b])).toEqual([10, 20]);
  });

  it("keeps items while every runner is busy and then sends up to maxBatch of them", async () => {
    const { batcher, batches, releases } = harness(2, 0);
    const all = [1, 2, 3, 4, 5].map((i) => batcher.submit(i));
    expect(batches).toEqual([[1]]);
    expect(batcher.pending).toBe(4);
    releases.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(batches).toEqual([[1], [2, 3]]);
    releases.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    releases.shift()!();
    expect(await Promise.all(all)).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([[1], [2, 3], [4, 5]]);
  });

  it("does not poll while a due partial batch waits for a busy runner", async () => {
    let capacityChecks = 0;
    const busy = new Batcher<number, number>({
      maxBatch: 8,
      maxWaitMs: 5,
      capacity: () => {
        capacityChecks++;
        return 0;
      },
      run: () => Promise.reject(new Error("never runs")),
    });
    const waiting = busy.submit(1);
    await new Promise((r) => setTimeout(r, 100));
    // one check at submit, one when the wait ends; a 1 ms poll would make ~95
    expect(capacityChecks).toBeLessThanOrEqual(3);
    busy.clear(new Error("stopping"));
    await expect(waiting).rejects.toThrow("stopping");
  });

  it("fails every item of a batch whose run fails, and clear() rejects the waiting ones", async () => {
    const failing = new Batcher<number, number>({
      maxBatch: 2,
      maxWaitMs: 60_000,
      capacity: () => 1,
      run: () => Promise.reject(new Error("thread died")),
    });
    const both = [failing.submit(1), failing.submit(2)];
    for (const p of both) await expect(p).rejects.toThrow("thread died");
    const waiting = failing.submit(3);
    failing.clear(new Error("stopping"));
    await expect(waiting).rejects.toThrow("stopping");
  });
});
