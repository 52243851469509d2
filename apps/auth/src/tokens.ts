/** Access tokens: ES256 JWTs (RFC 9068 `at+jwt`) signed with the key ring's current key. */
import { randomUUID } from "node:crypto";
import { ACCESS_TOKEN_ALG, type Role } from "@ndt/kit";
import { SignJWT } from "jose";
import type { KeyRing } from "./keys.js";

export interface TokenIssuerOptions {
  issuer: string;
  audience: string;
  ttlSec: number;
}

export class TokenIssuer {
  constructor(
    private readonly ring: KeyRing,
    private readonly opts: TokenIssuerOptions,
  ) {}

  get ttlSec() {
    return this.opts.ttlSec;
  }

  async issue(subject: { userId: string; org: string; role: Role; sid: string }): Promise<string> {
    const key = this.ring.signingKey();
    const now = Math.floor(this.ring.now() / 1000);
    return new SignJWT({ org: subject.org, role: subject.role, sid: subject.sid })
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid: key.kid, typ: "at+jwt" })
      .setSubject(subject.userId)
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.opts.ttlSec)
      .sign(key.privateKey);
  }
}
