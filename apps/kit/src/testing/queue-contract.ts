/**
 * The `JobQueue` contract: the same assertions against every adapter (RabbitMQ and the embedded PostgreSQL queue),
 * so services can move between them without noticing. Ordering is not promised, so no assertion depends on it.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { Delivery, JobQueue } from "../queue/port.js";

export interface JobQueueHarness {
  /** A fresh adapter on the test server. Several may be open at once (like several processes). */
  open(): Promise<JobQueue>;
  /** Cut every connection the adapters have to the server (as a network failure or a server restart would). */
  dropConnections(): Promise<void>;
  /** Make `queue` stop as a crashed process does: no clean release of anything it holds. */
  crash(queue: JobQueue): Promise<void>;
  /** Remove the harness's servers/queues (called once, after the suite). */
  cleanup?(): Promise<void>;
}

const uniqueQueue = () => `contract.${randomBytes(5).toString("hex")}`;

export async function waitUntil<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const message = (id: string) => ({ id, body: Buffer.from(JSON.stringify({ job: id })) });

/** Publish, retrying while the adapter reconnects (a rejected publish means "publish again"). */
async function publishSurely(q: JobQueue, queue: string, ids: string[]) {
  await waitUntil(`publish of ${ids.join(",")}`, async () => {
    try {
      await q.publish(queue, ids.map(message));
      return true;
    } catch {
      return false;
    }
  });
}

/** Run the contract against `harness`'s adapter; skipped (with the reason printed earlier) when it is undefined. */
export function jobQueueContract(name: string, harness: JobQueueHarness | undefined) {
  describe.skipIf(!harness)(`JobQueue contract: ${name}`, () => {
    const opened: JobQueue[] = [];
    afterAll(async () => {
      await harness?.cleanup?.();
    });
    const open = async () => {
      const q = await harness!.open();
      opened.push(q);
      return q;
    };

    // every test closes its adapters, including after a failure
    const withQueues = (fn: () => Promise<void>) => async () => {
      try {
        await fn();
      } finally {
        await Promise.all(opened.splice(0).map((q) => q.close().catch(() => undefined)));
      }
    };

    it(
      "publishes, consumes and acks: every message once, with its id, body, first delivery and publish time",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 5 });
        await q.declare(name, { deliveryLimit: 5 }); // idempotent
        const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
        const before = Date.now();
        await q.publish(name, ids.map(message));
        await q.publish(name, []);
        await waitUntil("depth 20", async () => (await q.depth(name)) === 20);
        const got: Delivery[] = [];
        const sub = await q.consume(name, { prefetch: 50 }, (d) => {
          got.push(d);
          void d.ack();
        });
        await waitUntil("20 deliveries", () => got.length >= 20);
        expect(got.map((d) => d.id).sort()).toEqual([...ids].sort());
        for (const d of got) {
          expect(d.deliveries).toBe(1);
          expect(JSON.parse(d.body.toString())).toEqual({ job: d.id });
          expect(d.publishedAt).toBeGreaterThanOrEqual(before - 1_000);
          expect(d.publishedAt).toBeLessThanOrEqual(Date.now() + 1_000);
        }
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
        await expect(got[0]!.ack()).rejects.toThrow(/settled/);
        await sub.stop();
        await q.ping();
      }),
    );

    it(
      "publishing to a queue nobody declared rejects instead of losing the messages",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await expect(q.publish(name, [message("lost?")])).rejects.toThrow(/does not exist/);
        // the adapter is still usable afterwards
        await q.declare(name, { deliveryLimit: 3 });
        await q.publish(name, [message("kept")]);
        await waitUntil("depth 1", async () => (await q.depth(name)) === 1);
      }),
    );

    it(
      "pause takes no new deliveries while those held can still be acked; stop then returns the rest",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 5 });
        await q.publish(name, ["p1", "p2", "p3", "p4", "p5", "p6"].map(message));
        const held: Delivery[] = [];
        const sub = await q.consume(name, { prefetch: 2 }, (d) => held.push(d));
        await waitUntil("two deliveries", () => held.length === 2);
        await sub.pause();
        await Promise.all(held.map((d) => d.ack()));
        // unpaused, each ack would bring the next message within milliseconds
        await new Promise((r) => setTimeout(r, 500));
        expect(held).toHaveLength(2);
        await sub.stop();
        await waitUntil("4 left in the queue", async () => (await q.depth(name)) === 4);
        // a fresh consumer gets exactly the four, each on its first delivery
        const rest: Delivery[] = [];
        const next = await q.consume(name, { prefetch: 10 }, (d) => {
          rest.push(d);
          void d.ack();
        });
        await waitUntil("the other four", () => rest.length === 4);
        expect(new Set(rest.map((d) => d.id))).toEqual(
          new Set(["p1", "p2", "p3", "p4", "p5", "p6"].filter((id) => !held.some((h) => h.id === id))),
        );
        expect(rest.map((d) => d.deliveries)).toEqual([1, 1, 1, 1]);
        await next.stop();
      }),
    );

    it(
      "release puts the message back without counting that delivery, keeping its id, body and publish time",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 2 });
        await q.publish(name, [message("back")]);
        const seen: Delivery[] = [];
        const sub = await q.consume(name, { prefetch: 1 }, (d) => {
          seen.push(d);
          // a retry, then released three times: past the limit of 2 if releases counted
          void (seen.length === 1 ? d.retry() : seen.length <= 4 ? d.release() : d.ack());
        });
        await waitUntil("five deliveries", () => seen.length >= 5);
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
        await expect(seen[1]!.release()).rejects.toThrow(/settled/);
        await sub.stop();
        expect(seen.map((d) => d.deliveries)).toEqual([1, 2, 2, 2, 2]);
        for (const d of seen) {
          expect(d.id).toBe("back");
          expect(JSON.parse(d.body.toString())).toEqual({ job: "back" });
          expect(d.publishedAt).toBe(seen[0]!.publishedAt);
        }
        expect(await q.depth(`${name}.dlq`)).toBe(0);
      }),
    );

    it(
      "a released message keeps the deliveries it spent: retried past the limit, it is dead-lettered all the same",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 2 });
        await q.publish(name, [message("spent")]);
        const counts: number[] = [];
        const sub = await q.consume(name, { prefetch: 1 }, (d) => {
          counts.push(d.deliveries);
          void (counts.length === 2 ? d.release() : d.retry());
        });
        await waitUntil("dead-lettered", async () => (await q.depth(`${name}.dlq`)) === 1);
        await sub.stop();
        // retried, released, then retried until past the limit: 1 + 2 counted deliveries, as without the release
        expect(counts).toEqual([1, 2, 2, 3]);
        expect(await q.depth(name)).toBe(0);
      }),
    );

    it(
      "retry puts the message back and its deliveries count grows",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 10 });
        await q.publish(name, [message("r1")]);
        const counts: number[] = [];
        const sub = await q.consume(name, { prefetch: 1 }, (d) => {
          counts.push(d.deliveries);
          void (d.deliveries < 3 ? d.retry() : d.ack());
        });
        await waitUntil("three deliveries", () => counts.length >= 3);
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
        await sub.stop();
        expect(counts).toEqual([1, 2, 3]);
      }),
    );

    it(
      "a handler that throws puts the message back: it is delivered again, its deliveries count grown",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 10 });
        await q.publish(name, [message("t1")]);
        const counts: number[] = [];
        const sub = await q.consume(name, { prefetch: 1 }, (d) => {
          counts.push(d.deliveries);
          if (d.deliveries === 1) throw new Error("handler bug");
          void d.ack();
        });
        await waitUntil("a second delivery", () => counts.length >= 2);
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
        await sub.stop();
        expect(counts).toEqual([1, 2]);
      }),
    );

    it(
      "consume refuses a prefetch that is not an integer ≥ 1",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 3 });
        for (const prefetch of [0, -1, 1.5, Number.NaN]) {
          await expect(q.consume(name, { prefetch }, () => undefined)).rejects.toThrow(RangeError);
        }
      }),
    );

    it(
      "past the delivery limit a retried message goes to <queue>.dlq, and no longer to consumers",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        const limit = 2;
        await q.declare(name, { deliveryLimit: limit });
        await q.publish(name, [message("poison")]);
        const counts: number[] = [];
        const sub = await q.consume(name, { prefetch: 1 }, (d) => {
          counts.push(d.deliveries);
          void d.retry();
        });
        await waitUntil("the dead-letter queue holds it", async () => (await q.depth(`${name}.dlq`)) === 1);
        await sub.stop();
        // delivered once plus `limit` redeliveries, then dead-lettered (RabbitMQ quorum-queue semantics)
        expect(counts).toEqual([1, 2, 3]);
        expect(await q.depth(name)).toBe(0);
        const dead: Delivery[] = [];
        const dlq = await q.consume(`${name}.dlq`, { prefetch: 1 }, (d) => {
          dead.push(d);
          void d.ack();
        });
        await waitUntil("the dead letter", () => dead.length === 1);
        await dlq.stop();
        expect(dead[0]!.id).toBe("poison");
        expect(JSON.parse(dead[0]!.body.toString())).toEqual({ job: "poison" });
      }),
    );

    it(
      "deadLetter sends the message straight to <queue>.dlq",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 5 });
        await q.publish(name, [message("bad"), message("good")]);
        const seen: string[] = [];
        const sub = await q.consume(name, { prefetch: 5 }, (d) => {
          seen.push(d.id);
          void (d.id === "bad" ? d.deadLetter("cannot decode") : d.ack());
        });
        await waitUntil("one dead letter", async () => (await q.depth(`${name}.dlq`)) === 1);
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
        await sub.stop();
        expect(seen.sort()).toEqual(["bad", "good"]);
      }),
    );

    it(
      "a consumer holds at most `prefetch` unsettled deliveries",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 5 });
        await q.publish(
          name,
          Array.from({ length: 10 }, (_, i) => message(`p${i}`)),
        );
        const held: Delivery[] = [];
        const sub = await q.consume(name, { prefetch: 3 }, (d) => held.push(d));
        await waitUntil("three deliveries", () => held.length >= 3);
        // give the adapter every chance to overrun the bound
        await new Promise((r) => setTimeout(r, 500));
        expect(held).toHaveLength(3);
        await held[0]!.ack();
        await waitUntil("a fourth delivery once one is settled", () => held.length >= 4);
        await new Promise((r) => setTimeout(r, 300));
        expect(held).toHaveLength(4);
        await sub.stop();
      }),
    );

    it(
      "unsettled deliveries come back after stop(), after close(), and after a crash",
      withQueues(async () => {
        const a = await open();
        const name = uniqueQueue();
        await a.declare(name, { deliveryLimit: 10 });
        await a.publish(name, ["u1", "u2", "u3"].map(message));
        const held: Delivery[] = [];
        const sub = await a.consume(name, { prefetch: 3 }, (d) => held.push(d));
        await waitUntil("three deliveries", () => held.length >= 3);
        await sub.stop();
        // settling after stop is harmless: they are back in the queue
        await held[0]!.ack().catch(() => undefined);
        await waitUntil("back in the queue after stop", async () => (await a.depth(name)) === 3);

        const b = await open();
        const again: Delivery[] = [];
        await b.consume(name, { prefetch: 3 }, (d) => again.push(d));
        await waitUntil("redelivered after stop", () => again.length >= 3);
        expect(again.map((d) => d.id).sort()).toEqual(["u1", "u2", "u3"]);
        expect(Math.min(...again.map((d) => d.deliveries))).toBeGreaterThanOrEqual(2);
        await b.close();
        await waitUntil("back in the queue after close", async () => (await a.depth(name)) === 3);

        const c = await open();
        const third: Delivery[] = [];
        await c.consume(name, { prefetch: 3 }, (d) => third.push(d));
        await waitUntil("redelivered after close", () => third.length >= 3);
        await harness!.crash(c);

        const d = await open();
        const fourth: Delivery[] = [];
        await d.consume(name, { prefetch: 3 }, (x) => {
          fourth.push(x);
          void x.ack();
        });
        await waitUntil("redelivered after a crash", () => fourth.length >= 3, 30_000);
        expect(fourth.map((x) => x.id).sort()).toEqual(["u1", "u2", "u3"]);
        await waitUntil("empty queue", async () => (await a.depth(name)) === 0);
      }),
    );

    it(
      "a consumer whose connection is cut resumes by itself and nothing is lost",
      withQueues(async () => {
        const q = await open();
        const name = uniqueQueue();
        await q.declare(name, { deliveryLimit: 10 });
        const acked = new Set<string>();
        let held: Delivery | undefined;
        await q.consume(name, { prefetch: 2 }, (d) => {
          if (d.id === "held" && !held) {
            held = d; // unsettled while the connection drops
            return;
          }
          void d.ack().then(() => acked.add(d.id));
        });
        await q.publish(name, [message("before"), message("held")]);
        await waitUntil("the first message", () => acked.has("before") && held);
        await harness!.dropConnections();
        // an ack racing the drop must not throw: the message is either settled or delivered again
        await held!.ack().then(() => acked.add("held"));
        await publishSurely(q, name, ["after1", "after2"]);
        await waitUntil("deliveries after the reconnect", () =>
          ["before", "held", "after1", "after2"].every((id) => acked.has(id)),
        );
        await waitUntil("empty queue", async () => (await q.depth(name)) === 0);
      }),
    );
  });
}
