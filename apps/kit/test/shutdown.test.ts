/** Graceful shutdown (GUARDRAILS P11): readiness fails first, accepted requests finish, exit is bounded. */
import { Agent, request } from "undici";
import { describe, expect, it } from "vitest";
import { createService, runService } from "../src/index.js";

async function slowService(handlerMs: number) {
  const app = await createService({ name: "slow", logLevel: "silent" });
  const counters = { started: 0 };
  app.get("/work", async () => {
    counters.started++;
    await new Promise((r) => setTimeout(r, handlerMs));
    return { ok: true };
  });
  return { app, counters };
}

describe("graceful shutdown", () => {
  it("under load: readiness fails first, and every request the server accepted gets its answer", async () => {
    const { app, counters } = await slowService(100);
    const running = await runService(app, {
      host: "127.0.0.1",
      port: 0,
      timeoutMs: 5_000,
      delayMs: 1_000,
      handleSignals: false,
    });
    const agent = new Agent({ connections: 20, keepAliveTimeout: 10_000 });
    const statuses: number[] = [];
    let stop = false;
    // 20 clients sending back-to-back requests over keep-alive connections
    const clients = Array.from({ length: 20 }, async () => {
      while (!stop) {
        try {
          const res = await request(`${running.url}/work`, { dispatcher: agent });
          await res.body.text();
          statuses.push(res.statusCode);
        } catch {
          // a new connection after the listener closed: refused, so never accepted
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 400));
    // readiness fails as shutdown() is called; the listener stays open for delayMs
    const done = running.shutdown("test");
    const ready = await request(`${running.url}/readyz`);
    expect(ready.statusCode).toBe(503); // still listening, but not ready
    await ready.body.text();
    expect(await done).toBe(true);
    stop = true;
    await Promise.all(clients);
    await agent.close();

    // there was load: more requests than clients, so connections were busy when shutdown began (on an idle
    // machine ~150 start; the bound is low so a busy 2-core CI machine still passes)
    expect(counters.started).toBeGreaterThan(20);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(statuses.length).toBe(counters.started); // no accepted request lost
    await expect(request(`${running.url}/work`)).rejects.toThrow(); // closed
  });

  it("exits within its bound when a request never finishes", async () => {
    const { app, counters } = await slowService(60_000);
    const running = await runService(app, { host: "127.0.0.1", port: 0, timeoutMs: 300, handleSignals: false });
    const hung = request(`${running.url}/work`).catch((e: unknown) => e);
    while (counters.started === 0) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    expect(await running.shutdown()).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(await hung).toBeInstanceOf(Error); // the connection was cut
  });
});
