/**
 * Access-token verification, shared by the gateway and every service behind it (no trust in the network alone).
 *
 * jose's `jwtVerify` with an explicit algorithm allow-list (ES256 only: `alg: none`, HS256 signed with the public
 * key, anything else → rejected before any key is used), issuer, audience, exp and nbf checked, and the claims
 * this platform requires (sub, org, role, sid, jti, iat, exp, nbf) checked for type.
 *
 * Verified tokens are remembered (bounded, by the exact token string) until they expire: a token is typically
 * presented many times in its 15 minutes, and the ECDSA signature check (~100–200 µs on this class of CPU) is
 * the dominant cost. exp/nbf are re-checked on every hit; revocation is NOT cached (see `SessionRevocations`).
 * Removing a key from the key source empties the cache.
 */
import { type JWTPayload, errors as joseErrors, jwtVerify } from "jose";
import { ACCESS_TOKEN_ALG, type KeySource } from "./jwks.js";

export const ROLES = ["admin", "inspector", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export interface AccessClaims {
  /** user id */
  sub: string;
  /** organisation id */
  org: string;
  role: Role;
  /** session (refresh-token family) id: what logout revokes */
  sid: string;
  jti: string;
  iat: number;
  exp: number;
  nbf: number;
}

export class TokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
    this.name = "TokenError";
  }
}

export interface VerifierOptions {
  issuer: string;
  audience: string;
  keys: KeySource;
  /** Seconds of tolerated clock skew for exp/nbf. @default 0 */
  clockToleranceSec?: number;
  /** Verified tokens remembered. 0 disables the cache. @default 10000 */
  cacheSize?: number;
}

function isRole(v: unknown): v is Role {
  return typeof v === "string" && (ROLES as readonly string[]).includes(v);
}

function toClaims(p: JWTPayload): AccessClaims {
  const { sub, jti, iat, exp, nbf } = p;
  const { org, role, sid } = p as Record<string, unknown>;
  if (
    typeof sub !== "string" ||
    typeof jti !== "string" ||
    typeof iat !== "number" ||
    typeof exp !== "number" ||
    typeof nbf !== "number" ||
    typeof org !== "string" ||
    typeof sid !== "string" ||
    !isRole(role)
  ) {
    throw new TokenError("missing or malformed claims");
  }
  return { sub, org, role, sid, jti, iat, exp, nbf };
}

export class TokenVerifier {
  private readonly cache = new Map<string, AccessClaims>();
  private readonly cacheSize: number;
  private readonly tolerance: number;

  constructor(private readonly opts: VerifierOptions) {
    this.cacheSize = opts.cacheSize ?? 10_000;
    this.tolerance = opts.clockToleranceSec ?? 0;
    opts.keys.onKeysRemoved?.(() => this.cache.clear());
  }

  /** @throws TokenError for every invalid token (the reason is for logs, not for clients). */
  async verify(token: string): Promise<AccessClaims> {
    const now = Math.floor(Date.now() / 1000);
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.exp + this.tolerance <= now) {
        this.cache.delete(token);
        throw new TokenError("expired");
      }
      if (cached.nbf - this.tolerance > now) throw new TokenError("not yet valid");
      return cached;
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        async (header) => {
          if (header.alg !== ACCESS_TOKEN_ALG) throw new TokenError("algorithm not allowed");
          if (typeof header.kid !== "string") throw new TokenError("no kid");
          const key = await this.opts.keys.getKey(header.kid);
          if (!key) throw new TokenError("unknown kid");
          return key;
        },
        {
          algorithms: [ACCESS_TOKEN_ALG],
          issuer: this.opts.issuer,
          audience: this.opts.audience,
          clockTolerance: this.tolerance,
          requiredClaims: ["sub", "jti", "iat", "exp", "nbf"],
          typ: "at+jwt",
        },
      ));
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof joseErrors.JOSEError) throw new TokenError(err.code);
      throw new TokenError("malformed");
    }
    const claims = toClaims(payload);
    if (this.cacheSize > 0) {
      if (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(token, claims);
    }
    return claims;
  }
}
