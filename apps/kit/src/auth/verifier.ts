/**
 * Access-token verification, shared by the gateway and every service behind it (no trust in the network alone).
 *
 * The compact JWS is parsed here, strictly, rather than through a generic JOSE library (whose generic path cost
 * ~300 µs per token here, against ~45 µs for the signature check itself):
 *   1. shape: three non-empty segments, at most 4 KiB, the signature in its one canonical base64url spelling;
 *   2. header: a JSON object with `alg` in the allow-list (EdDSA, ES256: `none`, HS*, RS* … are rejected before
 *      any key is touched), `typ` `at+jwt` (RFC 9068), a string `kid`, no `crit` (no extension is understood);
 *   3. key: by kid from the key source, and the header's `alg` must be the key's own (a key never verifies
 *      under another algorithm: no algorithm confusion);
 *   4. signature over the exact signed bytes — before the payload is even decoded;
 *   5. claims: iss, aud (string or array), exp, nbf (with the configured clock tolerance), and the claims this
 *      platform requires (sub, org, role, sid, jti, iat) with their types.
 *
 * Verified tokens are remembered (bounded, by the exact token string) until they expire: a token is typically
 * presented many times in its 15 minutes. exp/nbf are re-checked on every hit; revocation is NOT cached (see
 * `SessionRevocations`). Removing a key from the key source empties the cache.
 */
import { ACCESS_TOKEN_ALGS, type AccessTokenAlg, type KeySource, type VerificationKey } from "./jwks.js";
import { signatureValid } from "./signature.js";

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

const MAX_TOKEN_LENGTH = 4096;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** The one canonical unpadded base64url spelling of 64 bytes: 85 characters, then one whose 4 low bits are 0. */
const SIGNATURE_64 = /^[A-Za-z0-9_-]{85}[AQgw]$/;
/** Distinct well-formed headers remembered (one per signing key in practice). */
const HEADER_CACHE_SIZE = 32;

type Header = { alg: AccessTokenAlg; kid: string };

function isRole(v: unknown): v is Role {
  return typeof v === "string" && (ROLES as readonly string[]).includes(v);
}

function decodeJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseHeader(segment: string): Header {
  const h = decodeJson(segment);
  if (!isObject(h)) throw new TokenError("malformed header");
  const { alg, typ, kid } = h;
  if (typeof alg !== "string" || !(ACCESS_TOKEN_ALGS as readonly string[]).includes(alg)) {
    throw new TokenError("algorithm not allowed");
  }
  // RFC 9068 §4: "at+jwt"; the media-type prefix may be present and the comparison is case-insensitive
  const type = typeof typ === "string" ? typ.toLowerCase() : "";
  if (type !== "at+jwt" && type !== "application/at+jwt") throw new TokenError("not an access token (typ)");
  if (typeof kid !== "string" || kid === "") throw new TokenError("no kid");
  if (h.crit !== undefined) throw new TokenError("unsupported critical header");
  return { alg: alg as AccessTokenAlg, kid };
}

export class TokenVerifier {
  private readonly cache = new Map<string, AccessClaims>();
  private readonly headers = new Map<string, Header>();
  private readonly signature = Buffer.alloc(64);
  private signed = Buffer.alloc(1024);
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
      const invalid = this.lifetimeProblem(cached.exp, cached.nbf, now);
      if (invalid === "expired") this.cache.delete(token); // it never becomes valid again
      if (invalid) throw new TokenError(invalid);
      return cached;
    }

    if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) throw new TokenError("malformed");
    const dot1 = token.indexOf(".");
    const dot2 = token.indexOf(".", dot1 + 1);
    if (dot1 <= 0 || dot2 <= dot1 + 1 || dot2 === token.length - 1 || token.indexOf(".", dot2 + 1) !== -1) {
      throw new TokenError("malformed");
    }
    const headerSegment = token.slice(0, dot1);
    const signatureSegment = token.slice(dot2 + 1);
    let header = this.headers.get(headerSegment);
    if (!header) {
      if (!BASE64URL.test(headerSegment)) throw new TokenError("malformed");
      header = parseHeader(headerSegment);
      if (this.headers.size >= HEADER_CACHE_SIZE) this.headers.clear();
      this.headers.set(headerSegment, header);
    }
    // The signature segment is not covered by the signature: it must be the one canonical encoding of its bytes,
    // so a token has exactly one accepted spelling. The header and payload segments need no such check: the
    // signature covers their exact UTF-8 bytes, and UTF-8 is injective (a latin1 view would not be: U+0141 and
    // "A" would sign alike, and the base64url decoder skips characters outside its alphabet).
    if (!SIGNATURE_64.test(signatureSegment)) throw new TokenError("malformed signature");

    const found = this.opts.keys.getKey(header.kid);
    const key: VerificationKey | undefined = found instanceof Promise ? await found : found;
    if (!key) throw new TokenError("unknown kid");
    if (key.alg !== header.alg) throw new TokenError("algorithm does not match the key");

    // The signature and the signed bytes go into buffers this verifier reuses (no allocation per token). They are
    // filled only here, after the last await: from here to the check nothing yields, so a concurrent verify() that
    // was waiting for its key cannot overwrite them in between.
    const signature = this.signature;
    signature.write(signatureSegment, 0, 64, "base64url");
    const signingInput = token.slice(0, dot2);
    const length = Buffer.byteLength(signingInput, "utf8");
    if (this.signed.length < length) this.signed = Buffer.alloc(length * 2);
    this.signed.write(signingInput, 0, length, "utf8");
    if (!signatureValid(key, this.signed.subarray(0, length), signature)) {
      throw new TokenError("signature verification failed");
    }

    const claims = this.checkClaims(decodeJson(token.slice(dot1 + 1, dot2)), now);
    if (this.cacheSize > 0) {
      if (this.cache.size >= this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(token, claims);
    }
    return claims;
  }

  /**
   * Why a token with these `exp`/`nbf` is not valid at `now` (seconds, with the clock tolerance), or undefined when
   * it is. Checked on first verification and on every cache hit: a cached token may outlive its validity.
   */
  private lifetimeProblem(exp: number, nbf: number, now: number): "expired" | "not yet valid" | undefined {
    if (exp + this.tolerance <= now) return "expired";
    if (nbf - this.tolerance > now) return "not yet valid";
    return undefined;
  }

  private checkClaims(p: unknown, now: number): AccessClaims {
    if (!isObject(p)) throw new TokenError("malformed payload");
    if (p.iss !== this.opts.issuer) throw new TokenError("unexpected iss");
    const aud = p.aud;
    if (!(aud === this.opts.audience || (Array.isArray(aud) && aud.includes(this.opts.audience)))) {
      throw new TokenError("unexpected aud");
    }
    const { sub, jti, iat, exp, nbf, org, role, sid } = p;
    if (typeof exp !== "number" || !Number.isFinite(exp)) throw new TokenError("missing or malformed claims");
    if (typeof nbf !== "number" || !Number.isFinite(nbf)) throw new TokenError("missing or malformed claims");
    const invalid = this.lifetimeProblem(exp, nbf, now);
    if (invalid) throw new TokenError(invalid);
    if (
      typeof sub !== "string" ||
      typeof jti !== "string" ||
      typeof iat !== "number" ||
      typeof org !== "string" ||
      typeof sid !== "string" ||
      !isRole(role)
    ) {
      throw new TokenError("missing or malformed claims");
    }
    return { sub, org, role, sid, jti, iat, exp, nbf };
  }
}
