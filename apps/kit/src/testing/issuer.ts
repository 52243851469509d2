/**
 * A stand-in for auth in the tests of services that verify tokens themselves: an Ed25519 key (auth's algorithm)
 * published as a JWKS by a small Fastify server, signing access tokens shaped exactly like auth's.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { ACCESS_TOKEN_ALG } from "../auth/jwks.js";
import type { Role } from "../auth/verifier.js";

export interface TestIssuer {
  jwksUrl: string;
  /** An access token; it lives `ttlSec` (default 900, auth's access token lifetime). */
  token(claims: { org: string; role: Role; sub?: string; sid?: string; ttlSec?: number }): Promise<string>;
  stop(): Promise<void>;
}

export async function testIssuer(): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair(ACCESS_TOKEN_ALG);
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: ACCESS_TOKEN_ALG, use: "sig" };
  const server = Fastify();
  server.get("/.well-known/jwks.json", async () => ({ keys: [jwk] }));
  await server.listen({ host: "127.0.0.1", port: 0 });
  const { port } = server.server.address() as AddressInfo;
  return {
    jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async token({ org, role, sub = randomUUID(), sid = randomUUID(), ttlSec = 900 }) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ org, role, sid })
        .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid, typ: "at+jwt" })
        .setSubject(sub)
        .setIssuer("ndt-auth")
        .setAudience("ndt-api")
        .setJti(randomUUID())
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + ttlSec)
        .sign(privateKey);
    },
    stop: () => server.close(),
  };
}
