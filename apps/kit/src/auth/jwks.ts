/**
 * Where a verifier gets public keys, by `kid`.
 *
 * A key is bound to ONE algorithm when it is imported (an Ed25519 JWK verifies EdDSA only, a P-256 JWK ES256
 * only); the verifier rejects a token whose header names another algorithm than its key's, so no header can make
 * a key be used in a way it was not meant for (RFC 8725 §3.1).
 *
 * `RemoteJwks` fetches a JWKS document (the gateway and the services behind it read auth's
 * `/.well-known/jwks.json`), caches it, refreshes it in the background after `ttlMs`, and refetches at once on an
 * unknown kid (a key rotation) — at most once per `minRefetchMs`, so a flood of tokens with made-up kids cannot
 * turn into a flood of fetches. Fetches are single-flight and time out.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";

/** The algorithm auth signs access tokens with. */
export const ACCESS_TOKEN_ALG = "EdDSA";
/** Algorithms a verifier accepts (ES256: keys of a ring that signed with it before EdDSA, until they retire). */
export const ACCESS_TOKEN_ALGS = ["EdDSA", "ES256"] as const;
export type AccessTokenAlg = (typeof ACCESS_TOKEN_ALGS)[number];

/** A public key ready for verification, imported once (never per token). */
export interface VerificationKey {
  kid: string;
  alg: AccessTokenAlg;
  /** For ES256 (and the OpenSSL fallback of EdDSA). */
  keyObject: KeyObject;
  /** EdDSA: the raw 32-byte Ed25519 public key. */
  raw?: Uint8Array;
}

export interface KeySource {
  /** The verification key for `kid`, or undefined when there is none (synchronous when the key is at hand). */
  getKey(kid: string): VerificationKey | undefined | Promise<VerificationKey | undefined>;
  /** Called with a listener that runs whenever keys are removed (verifiers drop cached tokens then). */
  onKeysRemoved?(listener: () => void): void;
}

/** A public JWK as published in a JWKS (only the members this platform reads). */
export interface PublicJwk {
  kty?: unknown;
  crv?: unknown;
  x?: unknown;
  y?: unknown;
  d?: unknown;
  kid?: unknown;
  alg?: unknown;
  use?: unknown;
}

/** The verification key of a public JWK, or undefined when it is not a usable EdDSA/ES256 signing key. */
export function verificationKey(jwk: PublicJwk): VerificationKey | undefined {
  if (typeof jwk.kid !== "string" || jwk.kid === "" || jwk.d !== undefined) return;
  if (jwk.use !== undefined && jwk.use !== "sig") return;
  let alg: AccessTokenAlg;
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") alg = "EdDSA";
  else if (jwk.kty === "EC" && jwk.crv === "P-256") alg = "ES256";
  else return;
  if (jwk.alg !== undefined && jwk.alg !== alg) return;
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
  } catch {
    return;
  }
  if (alg === "ES256") return { kid: jwk.kid, alg, keyObject };
  const raw = Buffer.from(String(jwk.x), "base64url");
  if (raw.length !== 32) return;
  return { kid: jwk.kid, alg, keyObject, raw };
}

/** Public JWKs usable for verification, by kid; everything else in a JWKS is ignored. */
export function importVerificationKeys(keys: readonly PublicJwk[]): Map<string, VerificationKey> {
  const out = new Map<string, VerificationKey>();
  for (const jwk of keys) {
    const key = verificationKey(jwk);
    if (key) out.set(key.kid, key);
  }
  return out;
}

/** Keys known in-process (auth verifies with its own key ring). */
export class StaticKeySource implements KeySource {
  constructor(private readonly keys: () => ReadonlyMap<string, VerificationKey>) {}
  getKey(kid: string) {
    return this.keys().get(kid);
  }
}

export interface RemoteJwksOptions {
  /** Refresh in the background once the copy is older than this. @default 300000 */
  ttlMs?: number;
  /** Minimum time between two fetches caused by unknown kids. @default 10000 */
  minRefetchMs?: number;
  /** @default 2000 */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class RemoteJwks implements KeySource {
  private keys = new Map<string, VerificationKey>();
  private fetchedAt = 0;
  private inflight: Promise<void> | undefined;
  private readonly listeners: (() => void)[] = [];
  private readonly ttlMs: number;
  private readonly minRefetchMs: number;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  /** Fetches done so far (observable in tests and metrics). */
  fetches = 0;

  constructor(
    private readonly url: string,
    opts: RemoteJwksOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 300_000;
    this.minRefetchMs = opts.minRefetchMs ?? 10_000;
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  /** Whether at least one usable key is cached. */
  async hasKeys(): Promise<boolean> {
    return this.keys.size > 0;
  }

  onKeysRemoved(listener: () => void) {
    this.listeners.push(listener);
  }

  /** Fetch now (single-flight). Rejects when the document cannot be fetched or parsed. */
  refresh(): Promise<void> {
    this.inflight ??= (async () => {
      try {
        this.fetches++;
        this.fetchedAt = Date.now();
        const res = await this.fetchImpl(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
        if (!res.ok) throw new Error(`JWKS fetch answered ${res.status}`);
        const body = (await res.json()) as { keys?: unknown };
        if (!Array.isArray(body.keys)) throw new Error("JWKS document has no keys array");
        const next = importVerificationKeys(body.keys.filter((k): k is PublicJwk => typeof k === "object" && !!k));
        const removed = [...this.keys.keys()].some((kid) => !next.has(kid));
        this.keys = next;
        if (removed) for (const l of this.listeners) l();
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }

  getKey(kid: string): VerificationKey | undefined | Promise<VerificationKey | undefined> {
    const age = Date.now() - this.fetchedAt;
    const known = this.keys.get(kid);
    if (known) {
      if (age > this.ttlMs) this.refresh().catch(() => undefined); // stale-while-revalidate
      return known;
    }
    return this.unknownKid(kid, age);
  }

  private async unknownKid(kid: string, age: number): Promise<VerificationKey | undefined> {
    if (this.fetchedAt === 0 || age >= this.minRefetchMs) {
      await this.refresh().catch(() => undefined);
      return this.keys.get(kid);
    }
    if (this.inflight) await this.inflight.catch(() => undefined);
    return this.keys.get(kid);
  }
}
