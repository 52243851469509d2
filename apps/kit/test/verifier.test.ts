import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { RemoteJwks, StaticKeySource, TokenError, TokenVerifier } from "../src/index.js";

const now = () => Math.floor(Date.now() / 1000);

async function setup() {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const sign = (claims: Record<string, unknown>, kid = "k1") =>
    new SignJWT({
      org: "o1",
      role: "viewer",
      sid: "s1",
      sub: "u1",
      jti: "j1",
      iss: "iss",
      aud: "aud",
      iat: now(),
      nbf: now(),
      exp: now() + 60,
      ...claims,
    })
      .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
      .sign(privateKey);
  return { publicKey, privateKey, sign };
}

describe("TokenVerifier", () => {
  it("re-checks expiry on every cache hit", async () => {
    const { publicKey, sign } = await setup();
    const v = new TokenVerifier({
      issuer: "iss",
      audience: "aud",
      keys: new StaticKeySource(() => new Map([["k1", publicKey]])),
    });
    const token = await sign({ exp: now() + 1 });
    expect((await v.verify(token)).sub).toBe("u1");
    await new Promise((r) => setTimeout(r, 2100));
    await expect(v.verify(token)).rejects.toBeInstanceOf(TokenError);
  });

  it("RemoteJwks: refetches on an unknown kid at most once per interval, and picks up a rotated key", async () => {
    const a = await setup();
    const b = await setup();
    let served = [{ ...(await exportJWK(a.publicKey)), kid: "k1", alg: "ES256", use: "sig" }];
    let fetches = 0;
    const fakeFetch = (async () => {
      fetches++;
      return new Response(JSON.stringify({ keys: served }), { headers: { "content-type": "application/json" } });
    }) as typeof fetch;
    const jwks = new RemoteJwks("http://jwks.invalid/jwks.json", { minRefetchMs: 200, fetch: fakeFetch });
    const v = new TokenVerifier({ issuer: "iss", audience: "aud", keys: jwks });
    expect((await v.verify(await a.sign({}))).sub).toBe("u1");
    expect(fetches).toBe(1);
    // the next key appears in the JWKS; a token signed with it arrives before the interval is over
    served = [...served, { ...(await exportJWK(b.publicKey)), kid: "k2", alg: "ES256", use: "sig" }];
    const next = await b.sign({}, "k2");
    await expect(v.verify(next)).rejects.toBeInstanceOf(TokenError);
    for (let i = 0; i < 5; i++) await expect(v.verify(await b.sign({}, `x${i}`))).rejects.toBeInstanceOf(TokenError);
    expect(fetches).toBe(1);
    await new Promise((r) => setTimeout(r, 250));
    expect((await v.verify(next)).sub).toBe("u1");
    expect(fetches).toBe(2);
  });

  it("drops cached tokens when their key is withdrawn from the JWKS", async () => {
    const a = await setup();
    let served: unknown[] = [{ ...(await exportJWK(a.publicKey)), kid: "k1" }];
    const fakeFetch = (async () => new Response(JSON.stringify({ keys: served }))) as typeof fetch;
    const jwks = new RemoteJwks("http://jwks.invalid/jwks.json", { minRefetchMs: 0, fetch: fakeFetch });
    const v = new TokenVerifier({ issuer: "iss", audience: "aud", keys: jwks });
    const token = await a.sign({});
    await v.verify(token);
    served = [];
    await jwks.refresh();
    await expect(v.verify(token)).rejects.toBeInstanceOf(TokenError);
  });
});
