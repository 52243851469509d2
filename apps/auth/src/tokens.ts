/**
 * Access tokens: EdDSA (Ed25519) JWTs (RFC 9068 `at+jwt`) signed with the key ring's current key.
 * The compact form is built here (one `crypto.sign` on the pre-imported key, no generic JOSE path).
 */
import { randomUUID, sign } from "node:crypto";
import type { Role } from "@ndt/kit";
import type { KeyRing } from "./keys.js";

export interface TokenIssuerOptions {
  issuer: string;
  audience: string;
  ttlSec: number;
}

const segment = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

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
    const header = segment({ alg: key.alg, kid: key.kid, typ: "at+jwt" });
    const payload = segment({
      org: subject.org,
      role: subject.role,
      sid: subject.sid,
      sub: subject.userId,
      iss: this.opts.issuer,
      aud: this.opts.audience,
      jti: randomUUID(),
      iat: now,
      nbf: now,
      exp: now + this.opts.ttlSec,
    });
    const input = `${header}.${payload}`;
    const signature =
      key.alg === "ES256"
        ? sign("sha256", Buffer.from(input), { key: key.privateKey, dsaEncoding: "ieee-p1363" })
        : sign(null, Buffer.from(input), key.privateKey);
    return `${input}.${signature.toString("base64url")}`;
  }
}
