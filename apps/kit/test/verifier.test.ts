import { createHmac, generateKeyPairSync, type KeyObject, sign as cryptoSign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type AccessTokenAlg,
  ed25519Backend,
  type KeySource,
  type PublicJwk,
  RemoteJwks,
  StaticKeySource,
  TokenError,
  TokenVerifier,
  verificationKey,
} from "../src/index.js";

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function keyPair(alg: AccessTokenAlg) {
  const { publicKey, privateKey } =
    alg === "EdDSA" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { publicKey, privateKey, jwk: publicKey.export({ format: "jwk" }) as PublicJwk };
}

/** A compact JWS over exactly these header and payload objects. */
function jws(header: Record<string, unknown>, payload: Record<string, unknown>, privateKey: KeyObject) {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig =
    header.alg === "ES256"
      ? cryptoSign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" })
      : cryptoSign(null, Buffer.from(input), privateKey);
  return `${input}.${sig.toString("base64url")}`;
}

const claims = (over: Record<string, unknown> = {}) => ({
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
  ...over,
});

function setup(alg: AccessTokenAlg = "EdDSA", kid = "k1") {
  const pair = keyPair(alg);
  const key = verificationKey({ ...pair.jwk, kid })!;
  const sign = (over: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    jws({ alg, kid, typ: "at+jwt", ...header }, claims(over), pair.privateKey);
  const verifier = (cacheSize = 0) =>
    new TokenVerifier({
      issuer: "iss",
      audience: "aud",
      cacheSize,
      keys: new StaticKeySource(() => new Map([[kid, key]])),
    });
  return { ...pair, key, sign, verifier };
}

async function reason(v: TokenVerifier, token: string): Promise<string> {
  try {
    await v.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return (err as TokenError).reason;
  }
  throw new Error("token was accepted");
}

describe("TokenVerifier", () => {
  it("accepts genuine EdDSA and ES256 tokens and returns their claims", async () => {
    for (const alg of ["EdDSA", "ES256"] as const) {
      const { sign, verifier } = setup(alg);
      const c = await verifier().verify(sign({ aud: ["other", "aud"] }));
      expect(c).toMatchObject({ sub: "u1", org: "o1", role: "viewer", sid: "s1", jti: "j1" });
    }
    expect(["libsodium", "openssl"]).toContain(ed25519Backend);
  });

  it("verifies concurrent distinct tokens while the key source answers asynchronously (a JWKS fetch)", async () => {
    const { key, privateKey } = setup("EdDSA");
    const slowKeys: KeySource = {
      getKey: (kid) => new Promise((resolve) => setTimeout(() => resolve(kid === "k1" ? key : undefined), 5)),
    };
    const v = new TokenVerifier({ issuer: "iss", audience: "aud", cacheSize: 0, keys: slowKeys });
    const tokens = Array.from({ length: 8 }, (_, i) =>
      jws({ alg: "EdDSA", kid: "k1", typ: "at+jwt" }, claims({ jti: `j${i}` }), privateKey),
    );
    const verified = await Promise.all(tokens.map((token) => v.verify(token)));
    expect(verified.map((c) => c.jti)).toEqual(tokens.map((_, i) => `j${i}`));
  });

  it("rejects alg none, HS256 signed with the public key, and a header alg that is not the key's", async () => {
    const { sign, verifier, jwk, publicKey } = setup("EdDSA");
    const v = verifier();
    const payload = b64(claims());
    expect(await reason(v, `${b64({ alg: "none", kid: "k1", typ: "at+jwt" })}.${payload}.`)).toBe("malformed");
    expect(await reason(v, `${b64({ alg: "none", kid: "k1", typ: "at+jwt" })}.${payload}.AAAA`)).toBe(
      "algorithm not allowed",
    );
    for (const secret of [publicKey.export({ type: "spki", format: "pem" }), JSON.stringify(jwk)]) {
      const input = `${b64({ alg: "HS256", kid: "k1", typ: "at+jwt" })}.${payload}`;
      const mac = createHmac("sha256", secret).update(input).digest("base64url");
      expect(await reason(v, `${input}.${mac}`)).toBe("algorithm not allowed");
    }
    // an ES256 signature presented under the Ed25519 key's kid
    const ec = keyPair("ES256");
    const confused = jws({ alg: "ES256", kid: "k1", typ: "at+jwt" }, claims(), ec.privateKey);
    expect(await reason(v, confused)).toBe("algorithm does not match the key");
    expect((await v.verify(sign())).sub).toBe("u1");
  });

  it("rejects a tampered payload, a foreign key, and an unknown kid", async () => {
    const { sign, verifier } = setup("EdDSA");
    const v = verifier();
    const [h, , s] = sign().split(".");
    expect(await reason(v, `${h}.${b64(claims({ role: "admin" }))}.${s}`)).toBe("signature verification failed");
    const foreign = keyPair("EdDSA");
    const forged = jws({ alg: "EdDSA", kid: "k1", typ: "at+jwt" }, claims(), foreign.privateKey);
    expect(await reason(v, forged)).toBe("signature verification failed");
    expect(await reason(v, sign({}, { kid: "nope" }))).toBe("unknown kid");
  });

  it("rejects a wrong aud or iss, expired and not-yet-valid tokens, missing or mistyped claims", async () => {
    const { sign, verifier } = setup("ES256");
    const v = verifier();
    expect(await reason(v, sign({ aud: "another" }))).toBe("unexpected aud");
    expect(await reason(v, sign({ iss: "evil" }))).toBe("unexpected iss");
    expect(await reason(v, sign({ exp: now() - 1 }))).toBe("expired");
    expect(await reason(v, sign({ nbf: now() + 600 }))).toBe("not yet valid");
    expect(await reason(v, sign({ sid: undefined }))).toBe("missing or malformed claims");
    expect(await reason(v, sign({ exp: "9999999999" }))).toBe("missing or malformed claims");
    expect(await reason(v, sign({ role: "root" }))).toBe("missing or malformed claims");
  });

  it("rejects another token type, critical headers, and malformed compact forms", async () => {
    const { sign, verifier } = setup("EdDSA");
    const v = verifier();
    expect(await reason(v, sign({}, { typ: "JWT" }))).toBe("not an access token (typ)");
    expect((await v.verify(sign({}, { typ: "application/AT+JWT" }))).sub).toBe("u1");
    expect(await reason(v, sign({}, { crit: ["exp"], exp: 1 }))).toBe("unsupported critical header");
    const good = sign();
    for (const token of ["", "abc", "a.b", "a.b.c.d", `${good}.`, `.${good}`, good.replace(".", "..")]) {
      expect(await reason(v, token)).toBe("malformed");
    }
    // one accepted spelling of the signature: no padding, no characters the decoder would skip, no short form
    for (const token of [`${good}=`, `${good.slice(0, -2)}!${good.slice(-2)}`, good.slice(0, -1)]) {
      expect(await reason(v, token)).toBe("malformed signature");
    }
    // characters outside base64url in the signed part change its UTF-8 bytes: the signature no longer matches
    const [h, p, s] = good.split(".");
    // the same low byte as the genuine first character (its latin1 view would be identical)
    const smuggled = `${h}.${String.fromCharCode(p!.charCodeAt(0) + 256)}${p!.slice(1)}.${s}`;
    expect(await reason(v, smuggled)).toBe("signature verification failed");
    expect(await reason(v, `${h}.${p}*.${s}`)).toBe("signature verification failed");
    expect(await reason(v, `${b64([1])}.${b64(claims())}.AAAA`)).toBe("malformed header");
    expect(await reason(v, "x".repeat(5000))).toBe("malformed");
  });

  it("re-checks expiry on every cache hit", async () => {
    const { sign, verifier } = setup();
    const v = verifier(100);
    // 2 s, not 1: with whole-second claims, a second boundary between signing and verifying must not expire it
    const token = sign({ exp: now() + 2 });
    expect((await v.verify(token)).sub).toBe("u1");
    await new Promise((r) => setTimeout(r, 3100));
    expect(await reason(v, token)).toBe("expired");
  });

  it("RemoteJwks: refetches on an unknown kid at most once per interval, and picks up a rotated key", async () => {
    const a = keyPair("EdDSA");
    const b = keyPair("EdDSA");
    const tokenOf = (pair: typeof a, kid: string) =>
      jws({ alg: "EdDSA", kid, typ: "at+jwt" }, claims(), pair.privateKey);
    let served: unknown[] = [{ ...a.jwk, kid: "k1", alg: "EdDSA", use: "sig" }];
    let fetches = 0;
    const fakeFetch = (async () => {
      fetches++;
      return new Response(JSON.stringify({ keys: served }), { headers: { "content-type": "application/json" } });
    }) as typeof fetch;
    const jwks = new RemoteJwks("http://jwks.invalid/jwks.json", { minRefetchMs: 1_000, fetch: fakeFetch });
    const v = new TokenVerifier({ issuer: "iss", audience: "aud", keys: jwks });
    expect((await v.verify(tokenOf(a, "k1"))).sub).toBe("u1");
    expect(fetches).toBe(1);
    // the next key appears in the JWKS; a token signed with it arrives before the interval is over
    served = [...served, { ...b.jwk, kid: "k2", alg: "EdDSA", use: "sig" }];
    const next = tokenOf(b, "k2");
    expect(await reason(v, next)).toBe("unknown kid");
    for (let i = 0; i < 5; i++) expect(await reason(v, tokenOf(b, `x${i}`))).toBe("unknown kid");
    expect(fetches).toBe(1);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await v.verify(next)).sub).toBe("u1");
    expect(fetches).toBe(2);
  });

  it("RemoteJwks ignores private, non-signing, mismatched and unsupported keys", async () => {
    const ed = keyPair("EdDSA");
    const ec = keyPair("ES256");
    const priv = ed.privateKey.export({ format: "jwk" });
    const served = [
      { ...priv, kid: "private" },
      { ...ed.jwk, kid: "enc", use: "enc" },
      { ...ed.jwk, kid: "mismatch", alg: "ES256" },
      { kty: "RSA", kid: "rsa", n: "AQAB", e: "AQAB" },
      { ...ec.jwk, kid: "ec", alg: "ES256" },
    ];
    const jwks = new RemoteJwks("http://jwks.invalid/jwks.json", {
      fetch: (async () => new Response(JSON.stringify({ keys: served }))) as typeof fetch,
    });
    await jwks.refresh();
    for (const kid of ["private", "enc", "mismatch", "rsa"]) expect(await jwks.getKey(kid)).toBeUndefined();
    expect((await jwks.getKey("ec"))?.alg).toBe("ES256");
  });

  it("drops cached tokens when their key is withdrawn from the JWKS", async () => {
    const a = keyPair("EdDSA");
    let served: unknown[] = [{ ...a.jwk, kid: "k1" }];
    const fakeFetch = (async () => new Response(JSON.stringify({ keys: served }))) as typeof fetch;
    const jwks = new RemoteJwks("http://jwks.invalid/jwks.json", { minRefetchMs: 0, fetch: fakeFetch });
    const v = new TokenVerifier({ issuer: "iss", audience: "aud", keys: jwks });
    const token = jws({ alg: "EdDSA", kid: "k1", typ: "at+jwt" }, claims(), a.privateKey);
    await v.verify(token);
    served = [];
    await jwks.refresh();
    await expect(v.verify(token)).rejects.toBeInstanceOf(TokenError);
  });
});
