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
      expect(await kv.set("t", "x", { ttlMs: 50 })).toBe(true);
      expect(await kv.getMany(["a", "t", "missing"])).toEqual(["1", "x", null]);
      await new Promise((r) => setTimeout(r, 120));
      expect(await kv.get("t")).toBeNull();
      expect(await kv.del("a", "missing")).toBe(1);
      expect(await kv.get("a")).toBeNull();
      await kv.close();
    });

    it("swap replaces only an existing key, returns the previous value and keeps the expiry", async () => {
      const kv = await make();
      expect(await kv.swap("s", "new")).toBeNull();
      expect(await kv.get("s")).toBeNull();
      await kv.set("s", "old", { ttlMs: 150 });
      expect(await kv.swap("s", "new")).toBe("old");
      expect(await kv.swap("s", "newer")).toBe("new");
      await new Promise((r) => setTimeout(r, 250));
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
      for (let i = 0; i < 3; i++) counts.push((await kv.hit("c", 200)).count);
      expect(counts).toEqual([1, 2, 3]);
      const parallel = await Promise.all(Array.from({ length: 10 }, () => kv.hit("p", 1000)));
      expect(parallel.map((h) => h.count).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      await kv.unhit("c");
      const h = await kv.hit("c", 200);
      expect(h.count).toBe(3);
      expect(h.resetMs).toBeGreaterThan(0);
      expect(h.resetMs).toBeLessThanOrEqual(200);
      await new Promise((r) => setTimeout(r, 250));
      expect((await kv.hit("c", 200)).count).toBe(1);
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
