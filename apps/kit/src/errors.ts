/**
 * The error envelope of the HTTP API (CONTRACTS.md §3): `{"error": {"code": "<snake_case>", "message": "..."}}`.
 *
 * Route code throws `HttpError` (or one of the helpers); the central error handler in `createService` turns it,
 * validation failures, body-parser failures and anything unexpected into the envelope. Unexpected errors become a
 * bare 500 `internal_error`: their message, stack or SQL never reach the client, only the log (with the request id).
 */
import { Type } from "@sinclair/typebox";

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ pattern: "^[a-z][a-z0-9_]*$" }),
      message: Type.String(),
    }),
  },
  { $id: "ErrorEnvelope", description: "Every error response" },
);

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Extra response headers, e.g. `retry-after`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);
export const unauthorized = (message = "Authentication required", code = "unauthorized") =>
  new HttpError(401, code, message);
export const forbidden = (message = "Not allowed") => new HttpError(403, "forbidden", message);
export const notFound = (message = "Not found") => new HttpError(404, "not_found", message);
export const conflict = (code: string, message: string) => new HttpError(409, code, message);
export const tooManyRequests = (retryAfterSeconds: number, message = "Too many requests") =>
  new HttpError(429, "too_many_requests", message, {
    "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))),
  });

export function envelope(code: string, message: string) {
  return { error: { code, message } };
}

/** Codes for statuses produced by the framework itself. */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 406:
      return "not_acceptable";
    case 408:
      return "request_timeout";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 415:
      return "unsupported_media_type";
    case 429:
      return "too_many_requests";
    case 431:
      return "headers_too_large";
    case 502:
      return "bad_gateway";
    case 503:
      return "service_unavailable";
    case 504:
      return "gateway_timeout";
    default:
      return status >= 500 ? "internal_error" : "bad_request";
  }
}
