/**
 * Issue 4 benchmarks: the gateway and auth against a bare Fastify "hello" server measured in the same run.
 *
 * (a) GET /api/v1/auth/me through the gateway (token verified at the gateway and again at auth, revocation and
 *     rate limits in Redis, user read from PostgreSQL) vs bare hello, autocannon, 50 connections;
 * (b) access-token verification alone, µs per token: cold (signature checked) and warm (verified-token cache);
 * (c) login throughput at the argon2id parameters, with the auth process's event-loop max delay while it runs.
 *
 * Every server runs as its own process, as in production, and so does autocannon (its CLI, `--json`): the load
 * generator shares the machine's cores with the servers but not an event loop with anything. Needs PostgreSQL and
 * Redis (DATABASE_URL, REDIS_URL).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import {
  ed25519Backend,
  type PublicJwk,
  StaticKeySource,
  signatureValid,
  TokenVerifier,
  verificationKey,
} from "@ndt/kit";
import { testDatabase, testRedis } from "@ndt/kit/testing";
import {
  type Benchmark,
  cpuSecondsOf,
  idleControl,
  machine,
  metricValue,
  prioritise,
  priorityNote,
  priorityPrefix,
  repoRoot,
  stopProcess,
  waitReady,
} from "./lib.js";

const DURATION = Number(process.env.BENCH_DURATION_SEC ?? 10);
/** Hashes at once in auth: 1 on this 2-core machine leaves a core to the event loops (and autocannon). */
const ARGON2_CONCURRENCY = process.env.BENCH_ARGON2_CONCURRENCY ?? "1";
const load = () => loadavg()[0]!.toFixed(1);
function start(script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return child;
}

interface CannonOptions {
  url: string;
  connections: number;
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
}

/** autocannon in its own process (the CLI with `--json`), so the load generator never shares an event loop. */
function cannon(opts: CannonOptions): Promise<CannonResult> {
  const args = [join(repoRoot, "node_modules/autocannon/autocannon.js"), "--json", "-c", String(opts.connections)];
  args.push("-d", String(opts.duration), "-m", opts.method ?? "GET");
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push("-H", `${k}=${v}`);
  if (opts.body !== undefined) args.push("-b", opts.body);
  args.push(opts.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      try {
        resolve(JSON.parse(out) as CannonResult);
      } catch {
        reject(new Error(`autocannon exited ${code} without a JSON result`));
      }
    });
  });
}

/** Event-loop delay since the previous scrape (prom-client resets its histogram on every scrape), in ms. */
async function eventLoopDelay(metricsUrl: string): Promise<{ max: number; p99: number }> {
  const text = await (await fetch(metricsUrl)).text();
  return {
    max: metricValue(text, "nodejs_eventloop_lag_max_seconds") * 1000,
    p99: metricValue(text, "nodejs_eventloop_lag_p99_seconds") * 1000,
  };
}

async function verification(): Promise<{ coldUs: number; coldCpuUs: number; warmUs: number; signatureUs: number }> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const key = verificationKey({ ...(publicKey.export({ format: "jwk" }) as PublicJwk), kid: "k1" })!;
  const keys = new Map([["k1", key]]);
  const opts = { issuer: "ndt-auth", audience: "ndt-api", keys: new StaticKeySource(() => keys) };
  const now = Math.floor(Date.now() / 1000);
  const N = 2000;
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const header = b64({ alg: "EdDSA", kid: "k1", typ: "at+jwt" });
  // distinct tokens shaped like auth's (uuid ids), each signed: nothing is shared between two verifications
  const signed = Array.from({ length: N }, () => {
    const input = Buffer.from(
      `${header}.${b64({ org: randomUUID(), role: "admin", sid: randomUUID(), sub: randomUUID(), iss: "ndt-auth", aud: "ndt-api", jti: randomUUID(), iat: now, nbf: now, exp: now + 900 })}`,
    );
    return { input, signature: sign(null, input, privateKey) };
  });
  const tokens = signed.map((t) => `${t.input.toString()}.${t.signature.toString("base64url")}`);
  const cold = new TokenVerifier({ ...opts, cacheSize: 0 });
  for (const t of tokens.slice(0, 200)) await cold.verify(t); // warm-up (JIT)
  // best of 5 passes over the N distinct tokens (each pass verifies every one: the cache is off)
  let coldUs = Number.POSITIVE_INFINITY;
  let coldCpuUs = Number.POSITIVE_INFINITY;
  let t0 = process.hrtime.bigint();
  for (let pass = 0; pass < 5; pass++) {
    const cpu0 = process.cpuUsage();
    t0 = process.hrtime.bigint();
    for (const t of tokens) await cold.verify(t);
    coldUs = Math.min(coldUs, Number(process.hrtime.bigint() - t0) / N / 1000);
    const cpu = process.cpuUsage(cpu0);
    coldCpuUs = Math.min(coldCpuUs, (cpu.user + cpu.system) / N);
  }
  // the signature check alone, on the same tokens already split and decoded: the floor under the figure above
  let signatureUs = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 5; pass++) {
    t0 = process.hrtime.bigint();
    for (const t of signed) if (!signatureValid(key, t.input, t.signature)) throw new Error("signature rejected");
    signatureUs = Math.min(signatureUs, Number(process.hrtime.bigint() - t0) / N / 1000);
  }
  const warm = new TokenVerifier(opts);
  for (const t of tokens) await warm.verify(t);
  const M = 200_000;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) await warm.verify(tokens[i % N]!);
  const warmUs = Number(process.hrtime.bigint() - t0) / M / 1000;
  return { coldUs, coldCpuUs, warmUs, signatureUs };
}

const fmt = (n: number, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const verdict = (ok: boolean) => (ok ? "holds" : "**does not hold**");

const bench: Benchmark = {
  id: "auth-gateway",
  title: "Issue 4 — service kernel, auth and gateway",
  async run() {
    prioritise();
    // (b) first, while no server of the benchmark runs yet: a microbenchmark on this process alone
    const verify = await verification();
    const db = await testDatabase("bench_auth");
    const kv = await testRedis("bench_auth");
    if (!db || !kv) return "_Skipped: PostgreSQL or Redis unreachable (see the printed reason)._";
    const children: ChildProcess[] = [];
    try {
      const common = {
        REDIS_URL: kv.url,
        REDIS_KEY_PREFIX: kv.prefix,
        LOG_LEVEL: "warn",
        HOST: "127.0.0.1",
      };
      const hello = start("bench/hello-server.ts", { PORT: "18079" });
      const auth = start("apps/auth/src/server.ts", {
        ...common,
        PORT: "18081",
        DATABASE_URL: db.url,
        SIGNING_KEY_SECRET: "bench-signing-key-secret-0123456789abcdef",
        TRUST_PROXY: "127.0.0.1",
        LOGIN_MAX_FAILURES_PER_ACCOUNT: "100000000",
        LOGIN_MAX_FAILURES_PER_IP: "100000000",
        ARGON2_CONCURRENCY: ARGON2_CONCURRENCY,
        // (c) reads auth's event-loop delay: 1 ms sampling, as a sample overstates the delay by up to its interval
        // (the 10 ms default would add up to 10 ms); the gateway keeps the default
        EVENT_LOOP_RESOLUTION_MS: "1",
      });
      children.push(hello, auth);
      await waitReady("http://127.0.0.1:18081/readyz");
      const gateway = start("apps/gateway/src/server.ts", {
        ...common,
        PORT: "18080",
        AUTH_URL: "http://127.0.0.1:18081",
        FILES_URL: "http://127.0.0.1:18082",
        REPORTS_URL: "http://127.0.0.1:18083",
        RATE_LIMIT_PER_IP: "100000000",
        RATE_LIMIT_PER_USER: "100000000",
      });
      children.push(gateway);
      await Promise.all([waitReady("http://127.0.0.1:18079/"), waitReady("http://127.0.0.1:18080/readyz")]);

      const gw = "http://127.0.0.1:18080";
      const creds = { email: "bench@example.com", password: "benchmark password" };
      const reg = await fetch(`${gw}/api/v1/auth/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...creds, organization: "Bench" }),
      });
      if (reg.status !== 201) throw new Error(`register answered ${reg.status}`);
      const login = await fetch(`${gw}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(creds),
      });
      const { accessToken } = (await login.json()) as { accessToken: string };

      // (a) — warm both, then measure in the same run
      const base = { connections: 50, duration: DURATION };
      await cannon({ ...base, url: "http://127.0.0.1:18079/", duration: 2 });
      const loadBefore = load();
      const hello0 = cpuSecondsOf(hello.pid!);
      const bare = await cannon({ ...base, url: "http://127.0.0.1:18079/" });
      const bareCpuUs = ((cpuSecondsOf(hello.pid!) - hello0) / bare.requests.total) * 1e6;
      const meOpts = { ...base, url: `${gw}/api/v1/auth/me`, headers: { authorization: `Bearer ${accessToken}` } };
      await cannon({ ...meOpts, duration: 2 });
      const cpu0 = [gateway.pid, auth.pid].map((pid) => cpuSecondsOf(pid!));
      const me = await cannon(meOpts);
      const cpu1 = [gateway.pid, auth.pid].map((pid) => cpuSecondsOf(pid!));
      const cpuUs = (i: number) => ((cpu1[i]! - cpu0[i]!) / me.requests.total) * 1e6;
      const ratio = me.requests.average / bare.requests.average;

      // (c) — reset the event-loop histogram, run logins, read the max delay seen meanwhile
      await eventLoopDelay("http://127.0.0.1:18081/metrics");
      const control = idleControl();
      const logins = await cannon({
        connections: 8,
        duration: DURATION,
        url: `${gw}/api/v1/auth/login`,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(creds),
      });
      const loop = await eventLoopDelay("http://127.0.0.1:18081/metrics");
      const controlLoop = await control.stop();
      const loadAfter = load();

      const rows = [
        [
          "bare Fastify hello, 50 conn",
          `${fmt(bare.requests.average)} req/s`,
          `p99 ${bare.latency.p99} ms`,
          `${bare.non2xx} non-2xx`,
        ],
        [
          "gateway → auth `GET /api/v1/auth/me`, 50 conn",
          `${fmt(me.requests.average)} req/s`,
          `p99 ${me.latency.p99} ms`,
          `${me.non2xx} non-2xx, ${me.errors} errors`,
        ],
        ["ratio (a), target ≥ 0.30", fmt(ratio, 2), "", verdict(ratio >= 0.3)],
        ["(a) CPU per request: bare hello server", `${fmt(bareCpuUs)} µs`, "", "from /proc, during the measured run"],
        [
          "(a) CPU per `/me` request: gateway / auth",
          `${fmt(cpuUs(0))} µs / ${fmt(cpuUs(1))} µs`,
          "",
          "from /proc, during the measured run",
        ],
        [
          `(b) verification of distinct tokens, EdDSA (${ed25519Backend})`,
          `${fmt(verify.coldUs, 1)} µs/token`,
          "",
          `target < 50: ${verdict(verify.coldUs < 50)}; CPU ${fmt(verify.coldCpuUs, 1)} µs/token`,
        ],
        [
          "(b) of which the signature check alone",
          `${fmt(verify.signatureUs, 1)} µs/token`,
          "",
          `Ed25519 (${ed25519Backend}) on the same tokens already split and decoded: the floor under the figure above`,
        ],
        [
          "(b) verification, verified-token cache hit",
          `${fmt(verify.warmUs, 2)} µs/token`,
          "",
          "the same token presented again (what (a) exercises)",
        ],
        [
          `(c) logins through the gateway, 8 conn, argon2 concurrency ${ARGON2_CONCURRENCY}`,
          `${fmt(logins.requests.average, 1)} logins/s`,
          `p99 ${logins.latency.p99} ms`,
          `${logins.non2xx} non-2xx`,
        ],
        [
          "(c) auth event-loop delay during logins",
          `max ${fmt(loop.max, 1)} ms`,
          `p99 ${fmt(loop.p99, 1)} ms`,
          `max < 20 ms: ${verdict(loop.max < 20)} (1 ms sampling, the interval included)`,
        ],
        [
          "(c) baseline: an idle Node process meanwhile",
          `max ${fmt(controlLoop.max, 1)} ms`,
          `p99 ${fmt(controlLoop.p99, 1)} ms`,
          "what the shared cores alone cost any event loop in the same window",
        ],
      ];
      return [
        `Machine: ${machine()}. Run: ${new Date().toISOString().slice(0, 16)}Z. Command: \`${priorityPrefix}npm run bench -- auth-gateway\``,
        `(hello, gateway and auth each their own process, autocannon its own process too, all on the same 2 cores as`,
        `PostgreSQL and Redis; ${DURATION} s per measurement after a 2 s warm-up; argon2id m=19456 KiB, t=2, p=1,`,
        `${ARGON2_CONCURRENCY} hash(es) at a time; 1-min load average ${loadBefore} before (a), ${loadAfter} after (c)${priorityNote}).`,
        "",
        "| measurement | figure | latency | notes |",
        "|---|---|---|---|",
        ...rows.map((r) => `| ${r.join(" | ")} |`),
        "",
        `(a): throughput follows CPU per request on a saturated 2-core machine. A verified \`/me\` costs ${fmt((cpuUs(0) + cpuUs(1)) / bareCpuUs)}× the`,
        "CPU of a bare hello request in the Node processes alone (plus Redis and PostgreSQL): two Node HTTP servers and one HTTP",
        "client hop, a Redis script at the gateway (rate limits + revocation, one round trip) and a revocation GET at",
        "auth, a PostgreSQL query — each a socket write and read (profiles: `writev`/`write*String` syscalls are the",
        "largest single cost in the gateway), on the same cores as autocannon, Redis and PostgreSQL.",
        "",
        "(b): a compact-JWS parser with strict header checks (alg allow-list bound to the key, typ, kid, no crit), the",
        "signature checked before the payload is decoded, then the claims; Ed25519 through libsodium on a key imported",
        "once (`openssl speed` on the two VM types measured: OpenSSL 3.0's Ed25519 verify 80–85 µs, P-256 55–60 µs;",
        "libsodium's is the row above).",
        "Every token is distinct and signed (uuid ids, as auth issues them); the cache is off for this figure.",
        "",
        "(c): argon2 runs on worker threads at nice 19, at most ARGON2_CONCURRENCY at a time (default cores − 1). The",
        "max-delay spikes were the main isolate's young-generation GC when last traced (`--trace-gc` on auth during",
        "logins, on the AMD EPYC VM: scavenges of 10–20 ms while p99 stayed ~3–4 ms); a scavenge copies into pages it",
        "may have to touch first, at the cost the machine line gives. The hashing threads do not block the loop. The",
        "idle control is a Node process doing nothing but watch its own loop in the same window: its max is what the",
        "shared cores alone cost.",
      ].join("\n");
    } finally {
      await Promise.all(children.map(stopProcess));
      await kv.cleanup();
      await db.drop();
    }
  },
};
export default bench;
