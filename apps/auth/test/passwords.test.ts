import { afterAll, describe, expect, it } from "vitest";
import { PasswordHasher } from "../src/passwords.js";

describe("PasswordHasher (argon2id, GUARDRAILS P1)", () => {
  // nice 0: the timing comparison below must not depend on what the other test file runs meanwhile
  const hasher = new PasswordHasher({ memoryKiB: 19456, timeCost: 2, concurrency: 1, nice: 0 });
  afterAll(() => hasher.close());

  it("hashes with argon2id m=19456, t=2, p=1 and verifies", async () => {
    const hash = await hasher.hash("correct horse battery");
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await hasher.verify(hash, "correct horse battery")).toBe(true);
    expect(await hasher.verify(hash, "wrong horse battery")).toBe(false);
    expect(await hasher.verify(undefined, "correct horse battery")).toBe(false);
    expect(await hasher.verify("not a hash", "x")).toBe(false);
  });

  it("runs off the event loop: timers keep firing while hashes are computed", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    await Promise.all([hasher.hash("a password of length"), hasher.hash("another password here")]);
    const elapsed = Date.now() - t0;
    clearInterval(timer);
    expect(elapsed).toBeGreaterThan(10); // the work is real
    expect(ticks).toBeGreaterThan(elapsed / 10); // and the loop kept turning meanwhile
  });

  it("close() fails the calls still waiting or running instead of leaving them pending, and later calls", async () => {
    const closing = new PasswordHasher({ memoryKiB: 19456, timeCost: 2, concurrency: 1, nice: 0 });
    const calls = [closing.hash("one"), closing.hash("two"), closing.hash("three")];
    const outcomes = Promise.allSettled(calls);
    await closing.close();
    const settled = await Promise.race([
      outcomes,
      new Promise<"pending">((r) => setTimeout(() => r("pending"), 10_000)),
    ]);
    expect(settled).toEqual(
      calls.map(() => ({ status: "rejected", reason: new Error("the password hasher is closed") })),
    );
    await expect(closing.hash("four")).rejects.toThrow("closed");
  });

  it("does the same work for an unknown account as for a wrong password", async () => {
    const hash = await hasher.hash("correct horse battery");
    const time = async (f: () => Promise<boolean>) => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const known = await time(() => hasher.verify(hash, "wrong password!"));
    const unknown = await time(() => hasher.verify(undefined, "wrong password!"));
    expect(unknown).toBeGreaterThan(known * 0.4);
  });
});
