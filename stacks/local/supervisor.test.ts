/**
 * The supervisor on a real child process: a small HTTP server (written here) that answers /readyz as a service does,
 * and exits with code 1 on start while a `crash` file is beside it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "./paths.js";
import { AppProcess, freePort, portIsFree } from "./processes.js";
import { type RestartPolicy, Supervised } from "./supervisor.js";

const SERVICE = `
import { existsSync } from "node:fs";
import { createServer } from "node:http";
if (existsSync(new URL("./crash", import.meta.url))) {
  console.error("cannot start: crash file present");
  process.exit(1);
}
const server = createServer((req, res) => res.writeHead(req.url === "/readyz" ? 200 : 404).end());
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ndt-supervisor-"));
  await writeFile(join(dir, "service.mjs"), SERVICE);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const running: Supervised[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((service) => service.stop(5_000)));
  await rm(join(dir, "crash"), { force: true });
});

async function supervise(policy: Partial<RestartPolicy>) {
  const port = await freePort();
  const lines: string[] = [];
  const gaveUp: Error[] = [];
  let launches = 0;
  const service = new Supervised({
    name: "fake",
    origin: `http://127.0.0.1:${port}`,
    launch: () => {
      launches += 1;
      return new AppProcess("fake", join(dir, "service.mjs"), { ...env(), PORT: String(port) }, logFile(), REPO_ROOT);
    },
    print: (line) => lines.push(line),
    giveUp: (err) => gaveUp.push(err),
    policy,
  });
  running.push(service);
  return { service, port, lines, gaveUp, launches: () => launches };
}

const logFile = () => join(dir, "fake.log");
const env = () => ({ PATH: process.env.PATH ?? "" });

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a service that exits on its own after it was ready", () => {
  it("is started again, with one line naming it, how it ended and its log, and is ready again", async () => {
    const { service, port, lines, gaveUp, launches } = await supervise({});
    await service.ready(30_000);
    const first = service.process;
    first.child.kill("SIGKILL");
    await until("ready again", () => lines.some((line) => line.includes("ready again")));
    expect(lines[0]).toBe(
      "  ↻ fake exited (signal SIGKILL), killed from outside (kill -9, or the kernel out of memory); restart 1 in " +
        `0.5 s. Its log: ${logFile()}`,
    );
    expect(lines[1]).toBe(`  ✓ fake ready again on 127.0.0.1:${port} (restart 1)`);
    expect(service.process).not.toBe(first);
    expect(service.process.running).toBe(true);
    expect(await portIsFree(port)).toBe(false);
    expect(launches()).toBe(2);
    expect(gaveUp).toEqual([]);
  }, 60_000);

  it("waits twice as long before each restart, and gives up when it keeps crashing: the stack stops", async () => {
    const { service, lines, gaveUp, launches } = await supervise({ initialDelayMs: 20, maxRestarts: 3 });
    await service.ready(30_000);
    await writeFile(join(dir, "crash"), "");
    service.process.child.kill("SIGKILL");
    await until("given up", () => gaveUp.length > 0);
    expect(lines.map((line) => /restart (\d) in ([\d.]+) s/.exec(line)?.slice(1))).toEqual([
      ["1", "0.02"],
      ["2", "0.04"],
      ["3", "0.08"],
    ]);
    expect(lines[1]).toMatch(/^ {2}↻ fake exited \(code 1\); restart 2 in 0\.04 s\. Its log: /);
    expect(gaveUp).toHaveLength(1);
    expect(gaveUp[0]?.message).toMatch(
      /^fake exited \(code 1\) again after 3 restarts within 60 s: it keeps crashing; the stack stops\. Its log /,
    );
    expect(gaveUp[0]?.message).toContain("  | cannot start: crash file present");
    expect(launches()).toBe(4);
  }, 60_000);

  it("waits the first delay again once a run has stayed up for `stableMs`", async () => {
    const { service, lines } = await supervise({ initialDelayMs: 20, stableMs: 1_500 });
    await service.ready(30_000);
    service.process.child.kill("SIGKILL");
    await until("ready again", () => lines.some((line) => line.includes("(restart 1)")));
    const readyAt = Date.now();
    // the behaviour under test is a duration: the run must have been up that long
    await until("up for stableMs", () => Date.now() - readyAt > 1_600);
    service.process.child.kill("SIGKILL");
    await until("restarted twice", () => lines.some((line) => line.includes("(restart 2)")));
    // without the reset the second wait would be 0.04 s
    expect(lines.filter((line) => line.includes("↻")).map((line) => /in ([\d.]+) s/.exec(line)?.[1])).toEqual([
      "0.02",
      "0.02",
    ]);
  }, 60_000);
});

describe("what the supervisor does not restart", () => {
  it("a stop (Ctrl-C): the service exits and nothing starts again", async () => {
    const { service, port, lines, gaveUp, launches } = await supervise({ initialDelayMs: 0 });
    await service.ready(30_000);
    await service.stop(5_000);
    // the exit has been seen: anything it would start is started by now
    await new Promise((r) => setImmediate(r));
    expect(service.process.running).toBe(false);
    expect(await portIsFree(port)).toBe(true);
    expect({ lines, gaveUp, launches: launches() }).toEqual({ lines: [], gaveUp: [], launches: 1 });
  }, 60_000);

  it("a restart still waiting for its turn when the stack stops", async () => {
    const { service, lines, launches } = await supervise({ initialDelayMs: 60_000 });
    await service.ready(30_000);
    service.process.child.kill("SIGKILL");
    await until("restart announced", () => lines.length > 0);
    const stopped = Date.now();
    await service.stop(5_000);
    expect(Date.now() - stopped).toBeLessThan(5_000);
    expect(launches()).toBe(1);
    expect(lines).toHaveLength(1);
  }, 60_000);

  it("a first run that never got ready: start-up reports it at once", async () => {
    await writeFile(join(dir, "crash"), "");
    const { service, lines, gaveUp, launches } = await supervise({ initialDelayMs: 0 });
    await expect(service.ready(30_000)).rejects.toThrow(/^fake exited \(code 1\); the stack stops/);
    await new Promise((r) => setImmediate(r));
    expect({ lines, gaveUp, launches: launches() }).toEqual({ lines: [], gaveUp: [], launches: 1 });
  }, 60_000);
});
