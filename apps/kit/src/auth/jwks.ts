/**
 * Where a verifier gets public keys, by `kid`.
 *
 * `RemoteJwks` fetches a JWKS document (the gateway and the services behind it read auth's
 * `/.well-known/jwks.json`), caches it, refreshes it in the background after `ttlMs`, and refetches at once on an
 * unknown kid (a key rotation) — at most once per `minRefetchMs`, so a flood of tokens with made-up kids cannot
 * turn into a flood of fetches. Fetches are single-flight and time out.
 */
import { type CryptoKey, importJWK, type JWK } from "jose";

export const ACCESS_TOKEN_ALG = "ES256";

export interface KeySource {
  /** The verification key for `kid`, or undefined when there is none. */
  getKey(kid: string): Promise<CryptoKey | undefined>;
  /** Called with a listener that runs whenever keys are removed (verifiers drop cached tokens then). */
  onKeysRemoved?(listener: () => void): void;
}

/** Public JWKs usable for ES256 verification; everything else in a JWKS is ignored. */
export async function importVerificationKeys(keys: readonly JWK[]): Promise<Map<string, CryptoKey>> {
  const out = new Map<string, CryptoKey>();
  for (const jwk of keys) {
    if (!jwk.kid || jwk.kty !== "EC" || jwk.crv !== "P-256" || jwk.d !== undefined) continue;
    if (jwk.alg !== undefined && jwk.alg !== ACCESS_TOKEN_ALG) continue;
    if (jwk.use !== undefined && jwk.use !== "sig") continue;
    out.set(jwk.kid, (await importJWK(jwk, ACCESS_TOKEN_ALG)) as CryptoKey);
  }
  return out;
}

/** Keys known in-process (auth verifies with its own key ring). */
export class StaticKeySource implements KeySource {
  constructor(private readonly keys: () => ReadonlyMap<string, CryptoKey>) {}
  async getKey(kid: string) {
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
  private keys = new Map<string, CryptoKey>();
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
        const next = await importVerificationKeys(body.keys as JWK[]);
        const removed = [...this.keys.keys()].some((kid) => !next.has(kid));
        this.keys = next;
        if (removed) for (const l of this.listeners) l();
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }

  async getKey(kid: string): Promise<CryptoKey | undefined> {
    const age = Date.now() - this.fetchedAt;
    const known = this.keys.get(kid);
    if (known) {
      if (age > this.ttlMs) this.refresh().catch(() => undefined); // stale-while-revalidate
      return known;
    }
    if (this.fetchedAt === 0 || age >= this.minRefetchMs) {
      await this.refresh().catch(() => undefined);
      return this.keys.get(kid);
    }
    if (this.inflight) await this.inflight.catch(() => undefined);
    return this.keys.get(kid);
  }
}
