/**
 * Contract suites for the ports: run the same assertions against every implementation (the real server adapter
 * now, the embedded one for the local stack later), so they are interchangeable.
 */
import { describe, expect, it } from "vitest";
import type { KeyValueStore } from "../redis/port.js";

/** Assertions every `KeyValueStore` must satisfy. `make` returns a fresh, empty store. */
export function keyValueStoreContract(name: string, make: () => Promise<KeyValueStore>) {
  describe(`KeyValueStore contract: ${name}`, () => {
    it("set/get/del, with expiry and only-if-absent", async () => {
      const kv = await make();
      expect(await kv.get("a")).toBeNull();
      expect(await kv.set("a", "1")).toBe(true);
      expect(await kv.get("a")).toBe("1");
      expect(await kv.set("a", "2", { onlyIfAbsent: true })).toBe(false);
      expect(await kv.get("a")).toBe("1");
      // windows of seconds: on a loaded CI machine a round trip can take tens of ms
      expect(await kv.set("t", "x", { ttlMs: 1_000 })).toBe(true);
      expect(await kv.getMany(["a", "t", "missing"])).toEqual(["1", "x", null]);
      await new Promise((r) => setTimeout(r, 1_200));
      expect(await kv.get("t")).toBeNull();
      expect(await kv.del("a", "missing")).toBe(1);
      expect(await kv.get("a")).toBeNull();
      await kv.close();
    });

    it("swap replaces only an existing key, returns the previous value and keeps the expiry", async () => {
      const kv = await make();
      expect(await kv.swap("s", "new")).toBeNull();
      expect(await kv.get("s")).toBeNull();
      await kv.set("s", "old", { ttlMs: 1_000 });
      expect(await kv.swap("s", "new")).toBe("old");
      expect(await kv.swap("s", "newer")).toBe("new");
      await new Promise((r) => setTimeout(r, 1_200));
      expect(await kv.get("s")).toBeNull();
      await kv.close();
    });

    it("swap is atomic: of concurrent swaps exactly one sees the original value", async () => {
      const kv = await make();
      await kv.set("race", "fresh");
      const seen = await Promise.all(Array.from({ length: 20 }, (_, i) => kv.swap("race", `spent-${i}`)));
      expect(seen.filter((v) => v === "fresh")).toHaveLength(1);
      await kv.close();
    });

    it("hit counts within a fixed window, then starts over; unhit takes one back", async () => {
      const kv = await make();
      const counts = [];
      for (let i = 0; i < 3; i++) counts.push((await kv.hit("c", 2_000)).count);
      expect(counts).toEqual([1, 2, 3]);
      const parallel = await Promise.all(Array.from({ length: 10 }, () => kv.hit("p", 1000)));
      expect(parallel.map((h) => h.count).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      await kv.unhit("c");
      const h = await kv.hit("c", 2_000);
      expect(h.count).toBe(3);
      expect(h.resetMs).toBeGreaterThan(0);
      expect(h.resetMs).toBeLessThanOrEqual(2_000);
      await new Promise((r) => setTimeout(r, h.resetMs + 200));
      expect((await kv.hit("c", 2_000)).count).toBe(1);
      await kv.unhit("never-hit");
      expect(await kv.get("never-hit")).toBeNull();
      await kv.close();
    });

    it("hitAndGet counts several windows and reads keys in one step", async () => {
      const kv = await make();
      await kv.set("r1", "yes");
      const first = await kv.hitAndGet(
        [
          { key: "h1", windowMs: 1000 },
          { key: "h2", windowMs: 500 },
        ],
        ["r1", "r-missing"],
      );
      expect(first.hits.map((h) => h.count)).toEqual([1, 1]);
      expect(first.hits[1]!.resetMs).toBeLessThanOrEqual(500);
      expect(first.values).toEqual(["yes", null]);
      const second = await kv.hitAndGet([{ key: "h1", windowMs: 1000 }], ["r-missing", "r1"]);
      expect(second.hits[0]!.count).toBe(2);
      expect(second.values).toEqual([null, "yes"]);
      expect((await kv.hit("h1", 1000)).count).toBe(3); // the same counters as hit()
      expect(await kv.hitAndGet([], [])).toEqual({ hits: [], values: [] });
      await kv.close();
    });

    it("only-if-absent: an expired key counts as absent, and of concurrent writers exactly one wins", async () => {
      const kv = await make();
      await kv.set("gone", "old", { ttlMs: 50 });
      await new Promise((r) => setTimeout(r, 120));
      expect(await kv.swap("gone", "x")).toBeNull(); // an expired key cannot be swapped
      expect(await kv.set("gone", "new", { onlyIfAbsent: true, ttlMs: 1000 })).toBe(true);
      expect(await kv.get("gone")).toBe("new");
      const won = await Promise.all(
        Array.from({ length: 20 }, (_, i) => kv.set("lock", `owner-${i}`, { onlyIfAbsent: true, ttlMs: 1000 })),
      );
      expect(won.filter(Boolean)).toHaveLength(1);
      const owner = await kv.get("lock");
      expect(owner).toBe(`owner-${won.indexOf(true)}`);
      // a plain set overwrites and clears the expiry
      expect(await kv.set("lock", "forever")).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      expect(await kv.get("lock")).toBe("forever");
      expect(await kv.getMany([])).toEqual([]);
      await kv.close();
    });

    it("del counts the keys it removed, values and sets alike", async () => {
      const kv = await make();
      await kv.set("d1", "1");
      await kv.set("d2", "2");
      await kv.addToSet("d3", "m", 1000);
      expect(await kv.del("d1", "d2", "d3", "nope")).toBe(3);
      expect(await kv.getMany(["d1", "d2"])).toEqual([null, null]);
      expect(await kv.setMembers("d3")).toEqual([]);
      expect(await kv.del()).toBe(0);
      await kv.close();
    });

    it("a set expires as a whole; adding renews the expiry; expired members do not come back", async () => {
      const kv = await make();
      // margins of 400 ms either side of each expiry: a loaded CI machine delays timers by tens of milliseconds
      await kv.addToSet("s", "a", 1000);
      await new Promise((r) => setTimeout(r, 600));
      await kv.addToSet("s", "b", 1000); // renews the whole set's expiry: ~1600 ms from the start, not 1000
      await new Promise((r) => setTimeout(r, 600));
      expect((await kv.setMembers("s")).sort()).toEqual(["a", "b"]);
      await new Promise((r) => setTimeout(r, 1000));
      expect(await kv.setMembers("s")).toEqual([]);
      await kv.addToSet("s", "c", 1000);
      expect(await kv.setMembers("s")).toEqual(["c"]);
      await kv.close();
    });

    it("hitAndGet is atomic under concurrency: every count is handed out once", async () => {
      const kv = await make();
      const results = await Promise.all(
        Array.from({ length: 15 }, () => kv.hitAndGet([{ key: "hg", windowMs: 2000 }], ["hg"])),
      );
      expect(results.map((r) => r.hits[0]!.count).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 15 }, (_, i) => i + 1),
      );
      // the read sees the counter as of the same step
      for (const r of results) expect(r.values[0]).toBe(String(r.hits[0]!.count));
      await kv.close();
    });

    it("sets: add, list, expire", async () => {
      const kv = await make();
      await kv.addToSet("set", "a", 1000);
      await kv.addToSet("set", "b", 1000);
      await kv.addToSet("set", "a", 1000);
      expect((await kv.setMembers("set")).sort()).toEqual(["a", "b"]);
      expect(await kv.setMembers("none")).toEqual([]);
      await kv.ping();
      await kv.close();
    });
  });
}
