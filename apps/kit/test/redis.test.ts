import { randomBytes } from "node:crypto";
import { Type } from "@sinclair/typebox";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, RedisStore } from "../src/index.js";
import { RedisConfig } from "../src/redis/redis.js";
import { keyValueStoreContract } from "../src/testing/contracts.js";
import { testRedis } from "../src/testing/index.js";

const redis = await testRedis("kit_redis");
const settings = (prefix: string) =>
  loadConfig(Type.Object(RedisConfig), { REDIS_URL: redis?.url, REDIS_KEY_PREFIX: prefix });

describe.skipIf(!redis)("RedisStore", () => {
  afterAll(() => redis?.cleanup());

  keyValueStoreContract(
    "Redis",
    async () => new RedisStore(settings(`${redis!.prefix}${randomBytes(4).toString("hex")}:`)),
  );

  it("keeps stores with different prefixes apart", async () => {
    const a = new RedisStore(settings(`${redis!.prefix}a:`));
    const b = new RedisStore(settings(`${redis!.prefix}b:`));
    await a.set("k", "from-a");
    expect(await b.get("k")).toBeNull();
    await Promise.all([a.close(), b.close()]);
  });

  it("fails commands fast (no hang) while the server is unreachable", async () => {
    const dead = new RedisStore(
      loadConfig(Type.Object(RedisConfig), {
        REDIS_URL: "redis://127.0.0.1:1/0",
        REDIS_CONNECT_TIMEOUT_MS: "200",
        REDIS_COMMAND_TIMEOUT_MS: "300",
      }),
    );
    const t0 = Date.now();
    await expect(dead.get("x")).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(5_000);
    await dead.close();
  });
});
