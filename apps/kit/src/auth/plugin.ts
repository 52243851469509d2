/**
 * `authPlugin`: bearer-token authentication for routes. Decorates `app.authenticate` (a preHandler: verifies the
 * token, checks the session is not revoked, sets `request.user`) and `app.requireRole(...)`.
 * Every failure answers the same 401 `unauthorized`; the precise reason is logged at debug level only.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { forbidden, unauthorized } from "../errors.js";
import type { SessionRevocations } from "./revocation.js";
import { type AccessClaims, type Role, TokenError, type TokenVerifier } from "./verifier.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by `app.authenticate`. */
    user: AccessClaims | null;
  }
  interface FastifyInstance {
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>;
    requireRole(...roles: Role[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
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

  app.decorate("authenticate", async (request: FastifyRequest) => {
    const token = bearerToken(request);
    if (!token) throw unauthorized();
    let claims: AccessClaims;
    try {
      claims = await verifier.verify(token);
    } catch (err) {
      request.log.debug({ reason: err instanceof TokenError ? err.reason : "error" }, "token rejected");
      throw unauthorized("Invalid or expired token");
    }
    if (await revocations.isRevoked(claims.sid)) {
      request.log.debug("token rejected: session revoked");
      throw unauthorized("Invalid or expired token");
    }
    request.user = claims;
  });

  app.decorate("requireRole", (...roles: Role[]) => async (request: FastifyRequest) => {
    if (!request.user) throw unauthorized();
    if (!roles.includes(request.user.role)) throw forbidden();
  });
};

export const authPlugin = fp(plugin, { name: "ndt-auth", fastify: "5.x" });
