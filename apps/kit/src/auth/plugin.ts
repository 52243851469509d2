/**
 * `authPlugin`: bearer-token authentication for routes. Decorates `app.authenticate` (a preHandler: verifies the
 * token, checks the session is not revoked, sets `request.user`), `app.authenticatedRead` (the same checks
 * overlapped with a read-only route's own I/O) and `app.requireRole(...)`.
 * Every failure answers the same 401 `unauthorized`; the precise reason is logged at debug level only.
 */
import { type Static, type TObject, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { forbidden, unauthorized } from "../errors.js";
import type { KeyValueStore } from "../redis/port.js";
import { RemoteJwks } from "./jwks.js";
import { SessionRevocations } from "./revocation.js";
import { type AccessClaims, type Role, TokenError, TokenVerifier } from "./verifier.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by `app.authenticate`. */
    user: AccessClaims | null;
  }
  interface FastifyInstance {
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>;
    requireRole(...roles: Role[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /**
     * For read-only routes: verifies the token, then runs `read` WHILE the session's revocation is looked up (one
     * round trip of latency instead of two) and answers 401 — discarding what was read — when it is revoked.
     * `read` must have no side effects: it runs before the session is known to be live.
     */
    authenticatedRead<T>(request: FastifyRequest, read: (user: AccessClaims) => Promise<T>): Promise<T>;
    /**
     * Whether an access token checked earlier still holds: not expired, its session not revoked. For long-lived
     * responses (event streams), which must not outlive a logout or the token that opened them.
     */
    stillAuthenticated(user: AccessClaims): Promise<boolean>;
  }
}

export interface AuthPluginOptions {
  verifier: TokenVerifier;
  revocations: SessionRevocations;
}

/** The bearer token of a request, or undefined. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string" || header.length < 8 || header.slice(0, 7).toLowerCase() !== "bearer ") return;
  return header.slice(7).trim() || undefined;
}

const plugin: FastifyPluginAsync<AuthPluginOptions> = async (app, { verifier, revocations }) => {
  app.decorateRequest("user", null);

  const verified = async (request: FastifyRequest): Promise<AccessClaims> => {
    const token = bearerToken(request);
    if (!token) throw unauthorized();
    try {
      return await verifier.verify(token);
    } catch (err) {
      request.log.debug({ reason: err instanceof TokenError ? err.reason : "error" }, "token rejected");
      throw unauthorized("Invalid or expired token");
    }
  };
  const revoked = () => {
    // a revoked session answers exactly like a bad token
    return unauthorized("Invalid or expired token");
  };

  app.decorate("authenticate", async (request: FastifyRequest) => {
    const claims = await verified(request);
    if (await revocations.isRevoked(claims.sid)) {
      request.log.debug("token rejected: session revoked");
      throw revoked();
    }
    request.user = claims;
  });

  app.decorate(
    "authenticatedRead",
    async <T>(request: FastifyRequest, read: (user: AccessClaims) => Promise<T>): Promise<T> => {
      const claims = await verified(request);
      const [isRevoked, result] = await Promise.allSettled([revocations.isRevoked(claims.sid), read(claims)]);
      if (isRevoked.status === "rejected") throw isRevoked.reason;
      if (isRevoked.value) {
        request.log.debug("token rejected: session revoked");
        throw revoked();
      }
      if (result.status === "rejected") throw result.reason;
      request.user = claims;
      return result.value;
    },
  );

  app.decorate("stillAuthenticated", async (user: AccessClaims) => {
    if (Date.now() >= user.exp * 1000) return false;
    return !(await revocations.isRevoked(user.sid));
  });

  app.decorate("requireRole", (...roles: Role[]) => async (request: FastifyRequest) => {
    if (!request.user) throw unauthorized();
    if (!roles.includes(request.user.role)) throw forbidden();
  });
};

export const authPlugin = fp(plugin, { name: "ndt-auth", fastify: "5.x" });

/**
 * Env of a service behind the gateway that verifies tokens itself (no trust in the network alone): auth's published
 * keys, the expected issuer and audience, and how long a session revocation is remembered.
 */
export const TokenAuthConfig = {
  JWT_ISSUER: Type.String({ minLength: 1, default: "ndt-auth" }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: "ndt-api" }),
  /** auth's public keys (`/.well-known/jwks.json`); tokens are verified here, not trusted from the gateway. */
  JWKS_URL: Type.String({ pattern: "^https?://" }),
  /** Longest access-token life: how long a session revocation is remembered. */
  ACCESS_TOKEN_TTL_SEC: Type.Integer({ minimum: 60, maximum: 3600, default: 900 }),
};
export type TokenAuthSettings = Static<TObject<typeof TokenAuthConfig>>;

/** Registers `authPlugin` verifying against the JWKS of `config`, with revocations read from `store`. */
export async function registerTokenAuth(app: FastifyInstance, config: TokenAuthSettings, store: KeyValueStore) {
  const verifier = new TokenVerifier({
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    keys: new RemoteJwks(config.JWKS_URL),
  });
  await app.register(authPlugin, {
    verifier,
    revocations: new SessionRevocations(store, config.ACCESS_TOKEN_TTL_SEC * 1000),
  });
}
