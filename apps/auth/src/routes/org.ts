import { conflict, errorResponses, isUniqueViolation, type ServiceApp } from "@ndt/kit";
import type { AuthDeps } from "../app.js";
import { MemberBody, UserOut } from "../schemas.js";

export async function orgRoutes(app: ServiceApp, { db, passwords }: AuthDeps) {
  app.post(
    "/api/v1/org/members",
    {
      onRequest: [app.authenticate, app.requireRole("admin")],
      schema: {
        summary: "Add a user to the caller's organisation (admins only)",
        tags: ["org"],
        security: [{ bearer: [] }],
        body: MemberBody,
        response: { 201: UserOut, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const email = request.body.email.trim().toLowerCase();
      const hash = await passwords.hash(request.body.password);
      try {
        const { rows } = await db.query<{ id: string }>(
          "INSERT INTO users (organization_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
          [request.user!.org, email, hash, request.body.role],
        );
        return reply.code(201).send({ id: rows[0]!.id, email, role: request.body.role });
      } catch (err) {
        if (isUniqueViolation(err)) throw conflict("email_taken", "An account with this email already exists");
        throw err;
      }
    },
  );
}
