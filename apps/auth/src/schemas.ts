/** Request and response schemas of the auth API (CONTRACTS.md §3): one source for validation, types and OpenAPI. */
import { NonBlankText, ROLES, StrictObject } from "@ndt/kit";
import { Type } from "@sinclair/typebox";

// RFC 5321 §4.5.3.1: a local part of at most 64 octets (ASCII here, as the email format allows)
export const Email = Type.String({ format: "email", minLength: 3, maxLength: 254, pattern: "^[^@]{1,64}@" });
/** 12–128 characters, no composition rules (OWASP ASVS 2.1). */
export const Password = Type.String({ minLength: 12, maxLength: 128 });
export const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)));
export const RefreshToken = Type.String({ pattern: "^[A-Za-z0-9_-]{43}$", description: "opaque, 256 bits" });

export const RegisterBody = StrictObject({
  email: Email,
  password: Password,
  organization: NonBlankText(200),
});
export const Organization = Type.Object({ id: Type.String({ format: "uuid" }), name: Type.String() });
export const UserOut = Type.Object({ id: Type.String({ format: "uuid" }), email: Type.String(), role: RoleSchema });
export const RegisterReply = Type.Object({
  user: Type.Object({ id: Type.String(), email: Type.String(), role: Type.Literal("admin") }),
  organization: Organization,
});

export const LoginBody = StrictObject({ email: Email, password: Type.String({ minLength: 1, maxLength: 128 }) });
export const TokenPair = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal("Bearer"),
  expiresIn: Type.Integer({ description: "seconds until the access token expires" }),
});
export const RefreshBody = StrictObject({ refreshToken: RefreshToken });
export const LogoutBody = StrictObject({ refreshToken: Type.Optional(RefreshToken) });
export const PasswordBody = StrictObject({ currentPassword: Type.String({ maxLength: 128 }), newPassword: Password });
export const MeReply = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: RoleSchema,
  organization: Organization,
});
export const MemberBody = StrictObject({ email: Email, password: Password, role: RoleSchema });
