import type { ServiceApp } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import type { AuthDeps } from "../app.js";

const Jwk = Type.Object({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  y: Type.Optional(Type.String()),
  kid: Type.String(),
  alg: Type.String(),
  use: Type.String(),
});

export async function jwksRoutes(app: ServiceApp, { ring }: AuthDeps) {
  app.get(
    "/.well-known/jwks.json",
    {
      schema: {
        summary: "Public keys that verify access tokens (current, previous until retired, next before use)",
        tags: ["auth"],
        response: { 200: Type.Object({ keys: Type.Array(Jwk) }) },
      },
    },
    async (_request, reply) => {
      reply.header("cache-control", "public, max-age=60");
      return ring.jwks();
    },
  );
}
