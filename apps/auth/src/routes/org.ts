import { errorResponses, type ServiceApp } from "@ndt/kit";
import type { AuthDeps } from "../app.js";
import { MemberBody, UserOut } from "../schemas.js";
import { insertingUser, normalizeEmail } from "../users.js";

export async function orgRoutes(app: ServiceApp, { db, passwords, memberThrottle }: AuthDeps) {
  app.post(
    "/api/v1/org/members",
    {
      onRequest: [app.authenticate, app.requireRole("admin")],
      schema: {
        summary: "Add a user to the caller's organisation (admins only)",
        description:
          "An organisation whose additions keep finding emails already taken (409) is refused with 429 for a while, " +
          "before any password is hashed; adding new emails never uses that limit up.",
        tags: ["org"],
        security: [{ bearer: [] }],
        body: MemberBody,
        response: { 201: UserOut, ...errorResponses(400, 401, 403, 409, 429) },
      },
    },
    async (request, reply) => {
      const email = normalizeEmail(request.body.email);
      const { role } = request.body;
      const id = await memberThrottle.creating(request.user!.org, async () => {
        const hash = await passwords.hash(request.body.password);
        const { rows } = await insertingUser(() =>
          db.query<{ id: string }>(
            "INSERT INTO users (organization_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id",
            [request.user!.org, email, hash, role],
          ),
        );
        return rows[0]!.id;
      });
      return reply.code(201).send({ id, email, role });
    },
  );
}
