import type { Role } from "@ndt/kit";
import { errorResponses, type ServiceApp, unauthorized } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import type { AuthDeps } from "../app.js";
import {
  LoginBody,
  LogoutBody,
  MeReply,
  PasswordBody,
  RefreshBody,
  RegisterBody,
  RegisterReply,
  TokenPair,
} from "../schemas.js";
import { insertingUser, normalizeEmail } from "../users.js";

const invalidCredentials = () => unauthorized("Invalid email or password", "invalid_credentials");
const invalidRefresh = () => unauthorized("Invalid or expired refresh token", "invalid_token");

type UserRow = { id: string; organization_id: string; role: Role; email: string; password_hash: string };

export async function authRoutes(app: ServiceApp, deps: AuthDeps) {
  const { db, passwords, sessions, tokens, loginThrottle, registrationThrottle } = deps;

  const pair = async (
    user: { id: string; organization_id: string; role: Role },
    sid: string,
    refreshToken: string,
  ) => ({
    accessToken: await tokens.issue({ userId: user.id, org: user.organization_id, role: user.role, sid }),
    refreshToken,
    tokenType: "Bearer" as const,
    expiresIn: tokens.ttlSec,
  });

  app.post(
    "/api/v1/auth/register",
    {
      schema: {
        summary: "Create an organisation and its first user (admin)",
        description:
          "Every attempt, whatever its outcome, counts against the client's address: over the limit, 429 with " +
          "Retry-After before any password is hashed.",
        tags: ["auth"],
        body: RegisterBody,
        response: { 201: RegisterReply, ...errorResponses(400, 409, 429) },
      },
    },
    async (request, reply) => {
      const email = normalizeEmail(request.body.email);
      // every registration counts against the client's IP before the hash: the hashing and the email_taken
      // answers (an enumeration oracle) are bounded per IP
      await registrationThrottle.attempt(request.ip);
      const hash = await passwords.hash(request.body.password);
      const result = await insertingUser(() =>
        db.transaction(async (tx) => {
          const org = await tx.query<{ id: string; name: string }>(
            "INSERT INTO organizations (name) VALUES ($1) RETURNING id, name",
            [request.body.organization.trim()],
          );
          const o = org.rows[0]!;
          const user = await tx.query<{ id: string }>(
            "INSERT INTO users (organization_id, email, password_hash, role) VALUES ($1, $2, $3, 'admin') RETURNING id",
            [o.id, email, hash],
          );
          return { user: { id: user.rows[0]!.id, email, role: "admin" as const }, organization: o };
        }),
      );
      return reply.code(201).send(result);
    },
  );

  app.post(
    "/api/v1/auth/login",
    {
      schema: {
        summary: "Exchange credentials for an access and a refresh token",
        tags: ["auth"],
        body: LoginBody,
        response: { 200: TokenPair, ...errorResponses(400, 401, 429) },
      },
    },
    async (request) => {
      const email = normalizeEmail(request.body.email);
      await loginThrottle.attempt(email, request.ip);
      const { rows } = await db.query<UserRow>(
        "SELECT id, organization_id, role, email, password_hash FROM users WHERE email = $1",
        [email],
      );
      const user = rows[0];
      if (!(await passwords.verify(user?.password_hash, request.body.password)) || !user) throw invalidCredentials();
      await loginThrottle.succeeded(email, request.ip);
      const session = await sessions.create(user.id);
      return pair(user, session.sid, session.refreshToken);
    },
  );

  app.post(
    "/api/v1/auth/refresh",
    {
      schema: {
        summary: "Spend a refresh token for a new pair (reusing a spent one revokes its whole family)",
        tags: ["auth"],
        body: RefreshBody,
        response: { 200: TokenPair, ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const result = await sessions.rotate(request.body.refreshToken);
      if (!result.ok) {
        if (result.reason === "reused") request.log.warn("refresh token reuse: session family revoked");
        throw invalidRefresh();
      }
      const { rows } = await db.query<UserRow>("SELECT id, organization_id, role FROM users WHERE id = $1", [
        result.userId,
      ]);
      const user = rows[0];
      if (!user) {
        await sessions.revoke(result.sid);
        throw invalidRefresh();
      }
      return pair(user, result.sid, result.refreshToken);
    },
  );

  app.post(
    "/api/v1/auth/logout",
    {
      onRequest: [app.authenticate],
      // the body is optional: an absent one validates as {}
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: "End the session: its access and refresh tokens stop working",
        tags: ["auth"],
        security: [{ bearer: [] }],
        body: LogoutBody,
        "x-request-body": { required: false },
        response: { 204: Type.Null(), ...errorResponses(400, 401) },
      },
    },
    async (request, reply) => {
      const claims = request.user!;
      await sessions.revoke(claims.sid);
      const token = request.body.refreshToken;
      if (token) {
        const family = await sessions.familyOf(token);
        if (family && family.userId === claims.sub && family.sid !== claims.sid) await sessions.revoke(family.sid);
      }
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/api/v1/auth/me",
    {
      // authenticated in the handler: the user is read while the session's revocation is looked up
      schema: {
        summary: "The caller and their organisation",
        tags: ["auth"],
        security: [{ bearer: [] }],
        response: { 200: MeReply, ...errorResponses(401) },
      },
    },
    async (request) => {
      const { rows } = await app.authenticatedRead(request, (user) =>
        db.query<{ id: string; email: string; role: Role; org_id: string; org_name: string }>(
          `SELECT u.id, u.email, u.role, o.id AS org_id, o.name AS org_name
             FROM users u JOIN organizations o ON o.id = u.organization_id
            WHERE u.id = $1 AND u.organization_id = $2`,
          [user.sub, user.org],
        ),
      );
      const me = rows[0];
      if (!me) throw unauthorized("Invalid or expired token");
      return { id: me.id, email: me.email, role: me.role, organization: { id: me.org_id, name: me.org_name } };
    },
  );

  app.post(
    "/api/v1/auth/password",
    {
      onRequest: [app.authenticate],
      schema: {
        summary: "Change the password; every session of the user ends (log in again)",
        description:
          "The current password is checked like a login's and counts against the same per-account and per-address " +
          "limits: over them, 429 with Retry-After before it is checked.",
        tags: ["auth"],
        security: [{ bearer: [] }],
        body: PasswordBody,
        response: { 204: Type.Null(), ...errorResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const userId = request.user!.sub;
      const { rows } = await db.query<UserRow>("SELECT id, email, password_hash FROM users WHERE id = $1", [userId]);
      const user = rows[0];
      if (!user) throw unauthorized("Invalid or expired token");
      // the current password is a guess like a login's: it counts against the same account and IP limits
      await loginThrottle.attempt(user.email, request.ip);
      if (!(await passwords.verify(user.password_hash, request.body.currentPassword))) throw invalidCredentials();
      await loginThrottle.succeeded(user.email, request.ip);
      const hash = await passwords.hash(request.body.newPassword);
      await db.query("UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1", [userId, hash]);
      await sessions.revokeAll(userId);
      return reply.code(204).send(null);
    },
  );
}
