import { Type } from "@sinclair/typebox";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError, csv, HttpConfig, jitteredDelay, loadConfig, PostgresConfig, RedisConfig } from "../src/index.js";
import { serverUnavailable } from "../src/testing/index.js";

const Schema = Type.Object({ ...HttpConfig, ...PostgresConfig, ...RedisConfig, SECRET: Type.String({ minLength: 8 }) });

describe("loadConfig", () => {
  it("applies defaults and converts strings", () => {
    const c = loadConfig(Schema, {
      DATABASE_URL: "postgres://u@h/db",
      REDIS_URL: "rediss://h:6380",
      SECRET: "long-enough",
      PORT: "9090",
      REDIS_TLS: "true",
    });
    expect(c.PORT).toBe(9090);
    expect(c.REDIS_TLS).toBe(true);
    expect(c.HOST).toBe("0.0.0.0");
    expect(c.DATABASE_TLS).toBe("disable");
  });

  it("names every missing or bad variable in one error", () => {
    let error: unknown;
    try {
      loadConfig(Schema, { PORT: "70000", DATABASE_URL: "mysql://x", LOG_LEVEL: "loud", SECRET: "short" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const vars = (error as ConfigError).problems.map((p) => p.variable).sort();
    expect(vars).toEqual(["DATABASE_URL", "LOG_LEVEL", "PORT", "REDIS_URL", "SECRET"]);
    expect((error as Error).message).toContain("REDIS_URL: is required");
    expect((error as Error).message).toContain("PORT:");
  });

  it("names a number that is not plain decimal text instead of truncating it", () => {
    const Numbers = Type.Object({ COUNT: Type.Integer({ minimum: 0 }), RATIO: Type.Number() });
    const load = (COUNT: string, RATIO = "0.5") => loadConfig(Numbers, { COUNT, RATIO });
    expect(load(" 12 ", "-1.5e2")).toEqual({ COUNT: 12, RATIO: -150 });
    expect(load("+7", ".25")).toEqual({ COUNT: 7, RATIO: 0.25 });
    // TypeBox alone read these as 2, 1, 16 and 1
    for (const bad of ["2.5", "1e3", "0x10", "1.0"]) {
      expect(() => load(bad)).toThrow(new RegExp(`COUNT: Expected integer \\(got "${bad.replace(".", "\\.")}"\\)`));
    }
    // and these as 0 and null
    expect(() => load("1", "0x10")).toThrow(/RATIO: Expected number \(got "0x10"\)/);
    expect(() => load("1", "Infinity")).toThrow(/RATIO: Expected number \(got "Infinity"\)/);
  });

  it("takes the trusted proxies as addresses or CIDR blocks, and names TRUST_PROXY when it is anything else", () => {
    const base = { DATABASE_URL: "postgres://u@h/db", REDIS_URL: "redis://h", SECRET: "long-enough" };
    expect(loadConfig(Schema, base).TRUST_PROXY).toBe("");
    for (const good of ["127.0.0.1", "10.0.0.0/16", "10.0.0.0/16, 127.0.0.1", "::1", "fd00::/8"]) {
      expect(loadConfig(Schema, { ...base, TRUST_PROXY: good }).TRUST_PROXY).toBe(good);
    }
    for (const bad of ["loopback", "10.0.0.0/16;10.1.0.0/16", "1.2.3", "*"]) {
      expect(() => loadConfig(Schema, { ...base, TRUST_PROXY: bad })).toThrow(/TRUST_PROXY: .*IP addresses or CIDR/);
    }
  });

  it("csv splits and trims", () => {
    expect(csv(" a, b,,c ")).toEqual(["a", "b", "c"]);
    expect(csv("")).toEqual([]);
  });
});

describe("jitteredDelay", () => {
  it("stays within [0, min(cap, base·2^n)] and spreads", () => {
    for (let n = 0; n < 10; n++) {
      const d = jitteredDelay(n, 100, 5_000);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(5_000, 100 * 2 ** n));
    }
    expect(jitteredDelay(3, 100, 5_000, () => 0.999)).toBe(799);
    expect(jitteredDelay(20, 100, 5_000, () => 0.5)).toBe(2_500);
  });
});

describe("serverUnavailable (test helper rule)", () => {
  const ci = process.env.CI;
  afterEach(() => {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
  });

  it("fails when CI is set", () => {
    process.env.CI = "true";
    expect(() => serverUnavailable("Redis", new Error("ECONNREFUSED"))).toThrow(/CI is set/);
  });

  it("skips with a printed reason otherwise", () => {
    delete process.env.CI;
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    expect(serverUnavailable("Redis", new Error("ECONNREFUSED"))).toBeUndefined();
    expect(warn.mock.calls[0]?.[0]).toMatch(/SKIPPING: Redis is unreachable \(ECONNREFUSED\)/);
    warn.mockRestore();
  });
});
