/**
 * `createService` builds the Fastify instance every NDT service starts from:
 *
 * request id (inbound `x-request-id` kept when well-formed, else generated; echoed on every response; in every log
 * line) → security headers (helmet) → CORS allow-list → metrics, `/healthz`, `/readyz` → OpenAPI from the route
 * schemas (`/openapi.json`, `/docs`) → the central error handler and the 404 handler, both answering the envelope.
 *
 * Validation uses the TypeBox type provider; unknown body fields are rejected (Ajv `removeAdditional: false` with
 * `additionalProperties: false` from `StrictObject`), never silently dropped. Bodies are JSON, so their types are
 * taken as sent (`123` is not a string); only the query string, params and headers, which are text, are converted.
 * No string anywhere may hold U+0000 (PostgreSQL text cannot store it): 400, before any handler runs.
 */
import { randomUUID } from "node:crypto";
import { AjvCompiler } from "@fastify/ajv-compiler";
import type { IncomingMessage, ServerResponse } from "node:http";
import cors from "@fastify/cors";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { type Static, type TProperties, type TSchema, Type } from "@sinclair/typebox";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  type FastifySchemaValidationError,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
  type RawServerDefault,
} from "fastify";
import type { OpenAPIV3 } from "openapi-types";
import { csv } from "../config.js";
import { codeForStatus, ErrorEnvelope, envelope, HttpError } from "../errors.js";
import { clientErrorHandler } from "./client-errors.js";
import { healthPlugin } from "./health.js";
import { metricsPlugin } from "./metrics.js";
import { helmetHeaders, securityHeadersPlugin } from "./security-headers.js";

/** An operation's request body as a route declares it (`x-request-body`), over the one derived from `body`. */
type DeclaredRequestBody = Partial<OpenAPIV3.RequestBodyObject>;

declare module "fastify" {
  interface FastifySchema {
    /**
     * The operation's OpenAPI request body, merged over the one derived from `body`: @fastify/swagger marks every
     * `body` required and knows nothing of a body the handler reads itself (a stream).
     */
    "x-request-body"?: DeclaredRequestBody;
  }
}

/** The app type every service works with: Fastify + TypeBox type provider. */
export type ServiceApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export type OpenApiDocument = OpenAPIV3.Document;

export interface ServiceOptions {
  /** Service name: logs, metrics label, OpenAPI title. */
  name: string;
  version?: string;
  /** Log level; "silent" in tests. @default "info" */
  logLevel?: string;
  /** Write logs here instead of stdout (tests capture them). */
  logStream?: NodeJS.WritableStream;
  /** Comma-separated allowed CORS origins ("" = none). */
  corsOrigins?: string;
  /** @default 1 MiB */
  bodyLimit?: number;
  /**
   * How long an answer given before its request's body has all arrived waits for the rest (read and discarded)
   * before the connection closes: a slow client cannot hold it longer. @default 30 s (nginx's lingering_time)
   */
  lingerTimeoutMs?: number;
  /** OpenAPI document: served at `/openapi.json` and rendered at `/docs`. */
  openapi?: {
    description?: string;
    /** Public path of the JSON document. @default "/openapi.json" */
    jsonPath?: string;
    /** Rewrite the document before serving it (the gateway merges its upstreams' documents here). */
    transform?: (doc: OpenApiDocument) => OpenApiDocument;
  };
  /** Trust `x-forwarded-*` from these proxies (Fastify `trustProxy`). */
  trustProxy?: FastifyServerOptions["trustProxy"];
  /** Event-loop delay sampling interval for the metrics, ms. @default 10 */
  eventLoopResolutionMs?: number;
  /** Disable the per-request "incoming request / request completed" info logs. */
  disableRequestLogging?: boolean;
}

/** The HttpConfig variables (config.ts) that shape a service. */
export interface HttpServiceSettings {
  LOG_LEVEL: string;
  CORS_ORIGINS: string;
  BODY_LIMIT_BYTES: number;
  EVENT_LOOP_RESOLUTION_MS: number;
  TRUST_PROXY: string;
}

/** The options every service takes from its HttpConfig variables; a service adds or overrides the rest. */
export function httpServiceOptions(
  name: string,
  config: HttpServiceSettings,
  logStream?: NodeJS.WritableStream,
): ServiceOptions {
  return {
    name,
    logLevel: config.LOG_LEVEL,
    ...(logStream ? { logStream } : {}),
    corsOrigins: config.CORS_ORIGINS,
    eventLoopResolutionMs: config.EVENT_LOOP_RESOLUTION_MS,
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: config.TRUST_PROXY === "" ? false : config.TRUST_PROXY,
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** An object schema that rejects unknown properties (CONTRACTS.md §3). */
export function StrictObject<P extends TProperties>(
  properties: P,
  options: { description?: string; $id?: string } = {},
) {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

/**
 * One visible character (a regular-expression class): not whitespace, not a control character, not an invisible
 * format or filler character (zero-width space, joiners, direction marks, BOM, soft hyphen, the Mongolian vowel
 * separator, Hangul fillers). Text is blank without one.
 */
const VISIBLE_CHARACTER =
  "[^\\s\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u034f\\u115f\\u1160\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\u3164\\ufeff\\uffa0]";

/** C0 and C1 control characters and DEL but the tab (a regular-expression class body): they end or mangle a line. */
const LINE_BREAKING_CHARACTERS = "\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f";

// the combining grapheme joiner (U+034F) stands alone in the class, as one more invisible character
// eslint-disable-next-line no-misleading-character-class
const HAS_VISIBLE_CHARACTER = new RegExp(VISIBLE_CHARACTER);

/** One line of text with a visible character: what a title or a name is (reports and lists print it on one line). */
const NON_BLANK_LINE = `^(?=[\\s\\S]*${VISIBLE_CHARACTER})[^${LINE_BREAKING_CHARACTERS}]*$`;

/**
 * A required free-text field (a title, a name): 1 to `maxLength` characters, not blank, on one line (no control
 * character but the tab: a line break or an escape sequence in a name breaks the reports and logs that print it).
 * Handlers store it trimmed, so "  Weld 7 " and "Weld 7" are the same name.
 */
export function NonBlankText(maxLength: number) {
  return Type.String({ minLength: 1, maxLength, pattern: NON_BLANK_LINE, description: "not blank, on one line" });
}

/** Optional free text on one line (a site): may be empty; no control characters but the tab. */
export function LineText(maxLength: number) {
  return Type.String({
    maxLength,
    pattern: `^[^${LINE_BREAKING_CHARACTERS}]*$`,
    description: "text on one line",
  });
}

/** Free text over several lines (notes): line breaks and tabs allowed, no other control characters. */
export function MultiLineText(maxLength: number) {
  return Type.String({
    maxLength,
    pattern: "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$",
    description: "text without control characters other than line breaks and tabs",
  });
}

/** Envelope responses for the listed statuses, to spread into a route's `response` schema. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorRef]));
}

/** A reference to the shared `ErrorEnvelope` schema (registered once per app with `addSchema`). */
export const ErrorRef = Type.Unsafe<Static<typeof ErrorEnvelope>>({ $ref: "ErrorEnvelope#" });

export async function createService(opts: ServiceOptions): Promise<ServiceApp> {
  const app: ServiceApp = Fastify({
    logger: {
      level: opts.logLevel ?? "info",
      name: opts.name,
      redact: ["req.headers.authorization", "req.headers.cookie", 'res.headers["set-cookie"]'],
      ...(opts.logStream ? { stream: opts.logStream } : {}),
    },
    logController: new LogController({
      requestIdLogLabel: "requestId",
      disableRequestLogging: opts.disableRequestLogging ?? false,
    }),
    genReqId: (req) => {
      const inbound = req.headers["x-request-id"];
      return typeof inbound === "string" && REQUEST_ID.test(inbound) ? inbound : randomUUID();
    },
    bodyLimit: opts.bodyLimit ?? 1_048_576,
    // `/api/v1/inspections/` is the list, not an inspection with an empty id
    routerOptions: { ignoreTrailingSlash: true },
    trustProxy: opts.trustProxy ?? false,
    // Keep serving requests already on a connection while closing (they were accepted); `connection: close` is
    // added to those responses below, and idle keep-alive sockets are closed at once.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    // verbose: a failed pattern's error carries its schema, whose description says what the pattern means
    ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, verbose: true } },
    schemaController: { compilersFactory: { buildValidator: buildValidators } },
    // a bad URL or an over-long path parameter, found while routing: the envelope too, not Fastify's own body
    frameworkErrors: (error, request, reply) => {
      const status = error.statusCode ?? 400;
      // typed for a route it never reached: a plain reply here, which no onRequest hook has seen
      const plain = reply as unknown as FastifyReply;
      plain.headers(frameworkErrorHeaders).header("x-request-id", request.id);
      return plain.code(status).send(envelope(codeForStatus(status), "The request URL was rejected"));
    },
    // requests Node's parser refuses (431 over-long headers, 400 malformed): the envelope and headers too
    clientErrorHandler: clientErrorHandler(() => app.log, frameworkErrorHeaders),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook("onRoute", (route) => {
    if (![route.method].flat().includes("HEAD")) return;
    route.onSend = [keepHeadLength.note, ...[route.onSend ?? []].flat(), keepHeadLength.restore];
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    // No service decodes a compressed request body: gzip JSON read as JSON is a misleading 400, and a brotli upload
    // would be stored as its compressed bytes. RFC 9110 §15.5.16: 415, naming what is accepted (RFC 7694).
    const encoding = request.headers["content-encoding"];
    const hasBody = request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"]) > 0;
    if (hasBody && encoding !== undefined && !/^\s*(identity\s*)?$/i.test(encoding)) {
      reply.header("accept-encoding", "identity");
      throw new HttpError(415, "unsupported_content_encoding", "Request bodies must not be compressed");
    }
  });
  // An empty body under a JSON content type is an absent body (clients set the header on bodiless POSTs): routes
  // whose body is optional take it, the rest answer their usual validation error. Anything else parses as before.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body === "") return done(null, undefined);
    parseJson(request, body.toString(), done);
  });
  app.addHook("preValidation", async (request) => {
    const where = nulCharacterIn(request);
    if (where) throw new HttpError(400, "validation_failed", `${where} must not contain the NUL character`);
  });
  app.addHook("onSend", async (request, reply) => {
    if (app.health.shuttingDown) reply.header("connection", "close");
    else settleUnreadBody(request, reply, opts.lingerTimeoutMs ?? LINGER_TIMEOUT_MS);
  });

  await app.register(securityHeadersPlugin);
  const origins = csv(opts.corsOrigins ?? "");
  await app.register(cors, {
    origin: origins.length > 0 ? origins : false,
    credentials: true,
    exposedHeaders: ["x-request-id", "retry-after"],
  });
  await app.register(metricsPlugin, {
    service: opts.name,
    ...(opts.eventLoopResolutionMs ? { eventLoopResolutionMs: opts.eventLoopResolutionMs } : {}),
  });
  await app.register(healthPlugin);

  app.addSchema(ErrorEnvelope);
  if (opts.openapi) {
    const { transform, jsonPath = "/openapi.json", description } = opts.openapi;
    await app.register(swagger, {
      openapi: {
        openapi: "3.0.3",
        info: { title: opts.name, version: opts.version ?? "0.1.0", ...(description ? { description } : {}) },
        components: {
          securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
        },
      },
      refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
      transform: ({ schema, url }) => ({ schema: withProducedResponses(schema), url }),
    });
    const document = () => {
      const doc = withDeclaredRequestBodies(structuredClone(app.swagger() as OpenApiDocument));
      return transform ? transform(doc) : doc;
    };
    await app.register(swaggerUi, {
      routePrefix: "/docs",
      staticCSP: true,
      transformSpecification: () => document(),
      transformSpecificationClone: false,
    });
    app.get(jsonPath, { schema: { hide: true } }, async () => document());
  }

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(envelope("not_found", `No route for ${request.method} ${request.url.split("?")[0]}`));
  });

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      if (error.statusCode >= 500) request.log.error({ err: error }, "request failed");
      return reply.code(error.statusCode).headers(error.headers).send(envelope(error.code, error.message));
    }
    if (error.validation) {
      const message = describeValidation(error.validationContext ?? "request", error.validation);
      return reply.code(400).send(envelope("validation_failed", message));
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      // log everything, answer nothing internal
      request.log.error({ err: error }, "request failed");
      return reply.code(status).send(envelope(codeForStatus(status), "Internal server error"));
    }
    switch (error.code) {
      case "FST_ERR_CTP_INVALID_JSON_BODY":
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return reply.code(400).send(envelope("malformed_json", "The request body is not valid JSON"));
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return reply.code(413).send(envelope("payload_too_large", "The request body is too large"));
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return reply.code(415).send(envelope("unsupported_media_type", "Unsupported content type"));
    }
    if (status === 429) {
      return reply.code(429).send(envelope("too_many_requests", "Too many requests"));
    }
    // other framework 4xx (proto poisoning, bad content-length, ...): the status with a fixed message
    request.log.info({ err: error }, "request rejected");
    return reply.code(status).send(envelope(codeForStatus(status), "The request was rejected"));
  });

  return app;
}

/** The largest declared body read and discarded after an early answer (larger ones: the connection closes). */
const LINGER_MAX_BYTES = 64 * 1024 * 1024;
const LINGER_TIMEOUT_MS = 30_000;

/**
 * An answer that goes before its request's body has all arrived (a 401 before an upload is read, a refused body, an
 * upstream's early 415 passed on) must settle the rest of that body, or the next request on this keep-alive
 * connection waits behind it (a proxy in front then hangs or answers 502). Closing is what Fastify does for refused
 * bodies, but a client still sending then gets a reset that can destroy the answer before it is read. So the rest is
 * read and discarded, as nginx's lingering close does, up to LINGER_MAX_BYTES and for at most `timeoutMs`: a larger
 * declared body closes at once, a chunked one once it passes the bound, a slow one when the time is up.
 */
function settleUnreadBody(request: FastifyRequest, reply: FastifyReply, timeoutMs: number): void {
  const raw = request.raw;
  if (raw.complete) return;
  const declared = Number(raw.headers["content-length"]);
  if (declared > LINGER_MAX_BYTES) {
    reply.header("connection", "close");
    return;
  }
  raw.unpipe();
  reply.removeHeader("connection");
  // read() until the end, not resume(): a handler that began reading through the stream's async iterator (files
  // sniffs an upload's head so) left its 'readable' listener, and while one is attached resume() does not make the
  // stream flow, so the rest stayed unread and the next request on the connection was never parsed
  const chunked = Number.isNaN(declared);
  let drained = 0;
  const drain = () => {
    for (let chunk = raw.read() as Buffer | null; chunk !== null; chunk = raw.read() as Buffer | null) {
      drained += chunk.length;
      if (chunked && drained > LINGER_MAX_BYTES) return void raw.socket.destroy();
    }
  };
  raw.on("readable", drain);
  drain();
  const giveUp = setTimeout(() => raw.socket?.destroy(), timeoutMs).unref();
  raw.once("end", () => clearTimeout(giveUp));
  raw.once("close", () => clearTimeout(giveUp));
}

/**
 * onSend hooks put around every HEAD route's own (route hooks run after the app's, in the order given). The HEAD route
 * Fastify adds for a GET route ends with a hook that sets content-length from the payload the GET handler sent, so a
 * handler that answered the HEAD itself, with no body but the length its GET answer has (the gateway passing an
 * upstream's HEAD answer on), said `0`. The length such a handler set is noted before and put back after; a HEAD
 * answered with the GET's body keeps Fastify's.
 */
const keepHeadLength = (() => {
  const declared = new WeakMap<FastifyReply, string>();
  const isEmpty = (payload: unknown) =>
    payload === undefined || payload === null || payload === "" || (Buffer.isBuffer(payload) && payload.length === 0);
  return {
    note: async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      const length = reply.getHeader("content-length");
      if (request.method === "HEAD" && isEmpty(payload) && length !== undefined) declared.set(reply, String(length));
      return payload;
    },
    restore: async (_request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      const length = declared.get(reply);
      if (length !== undefined) reply.header("content-length", length);
      return payload;
    },
  };
})();

/** The security headers (as securityHeadersPlugin sends them) for answers given before any hook runs. */
const frameworkErrorHeaders = helmetHeaders();

const buildCoercing = AjvCompiler();
const buildStrict = AjvCompiler();

/**
 * Fastify's validator factory, split by part: query string, params and headers are text and get Ajv's type
 * conversion ("20" → 20); a JSON body is validated as sent, so `{"title": 123}` is a 400, not the string "123".
 */
const buildValidators: typeof buildCoercing = (externalSchemas, options) => {
  const coercing = buildCoercing(externalSchemas, options);
  const strict = buildStrict(externalSchemas, {
    ...options,
    customOptions: { ...options?.customOptions, coerceTypes: false },
  } as typeof options);
  return (route) => (route.httpPart === "body" ? strict(route) : coercing(route));
};

/**
 * One message naming each failing field: `body.role must be one of "admin", "inspector", "viewer"`,
 * `body.nickname is not a known field`. Ajv reports a union of constants as one error per constant plus the union's.
 */
export function describeValidation(context: string, errors: readonly FastifySchemaValidationError[]): string {
  const problems = new Map<string, string>();
  const allowed = new Map<string, unknown[]>();
  for (const error of errors) {
    const path = [context, ...error.instancePath.split("/").filter(Boolean)].join(".");
    const params = error.params as Record<string, unknown>;
    if (error.keyword === "additionalProperties") {
      problems.set(`${path}.${String(params.additionalProperty)}`, "is not a known field");
    } else if (error.keyword === "const") {
      allowed.set(path, [...(allowed.get(path) ?? []), params.allowedValue]);
    } else if (error.keyword === "pattern" && params.pattern === NON_BLANK_LINE) {
      const visible = HAS_VISIBLE_CHARACTER.test(String((error as { data?: unknown }).data ?? ""));
      problems.set(path, visible ? "must be one line, without control characters" : "must not be blank");
    } else if (error.keyword === "pattern" && describedAs(error)) {
      problems.set(path, `must be ${describedAs(error)}`);
    } else if (error.keyword === "required") {
      problems.set(`${path}.${String(params.missingProperty)}`, "is required");
    } else if (!(error.keyword === "anyOf" && allowed.has(path)) && !problems.has(path)) {
      problems.set(path, error.message ?? "is invalid");
    }
  }
  for (const [path, values] of allowed) {
    problems.set(path, `must be one of ${values.map((value) => JSON.stringify(value)).join(", ")}`);
  }
  return [...problems].map(([path, problem]) => `${path} ${problem}`).join("; ");
}

/** The description of the schema that failed (Ajv `verbose` puts it on the error), e.g. what a pattern means. */
function describedAs(error: FastifySchemaValidationError): string | undefined {
  const schema = (error as { parentSchema?: { description?: unknown } }).parentSchema;
  return typeof schema?.description === "string" ? schema.description : undefined;
}

/** Where the first U+0000 sits in the parsed query string, params or JSON body (`body.title`), if anywhere. */
function nulCharacterIn(request: FastifyRequest): string | undefined {
  const parts: [string, unknown][] = [
    ["querystring", request.query],
    ["params", request.params],
    // uploads arrive as streams or buffers: their bytes are data, not text
    ["body", Buffer.isBuffer(request.body) || isStream(request.body) ? undefined : request.body],
  ];
  for (const [part, value] of parts) {
    const found = nulPath(value, part, 0);
    if (found) return found;
  }
  return undefined;
}

function nulPath(value: unknown, path: string, depth: number): string | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? path : undefined;
  if (depth > 32 || value === null || typeof value !== "object") return undefined;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes("\u0000")) return `${path} (a key)`;
    const found = nulPath(item, Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function isStream(value: unknown): boolean {
  return typeof (value as { pipe?: unknown } | null)?.pipe === "function";
}

/**
 * A route that `produces` something other than JSON (an event stream, a PDF), as @fastify/swagger's OpenAPI 3 output
 * reads it: every response of the route in those media types, its error envelopes too, and no success response at
 * all when the route declares none (a stream has no response schema to validate against). Here the envelopes stay
 * `application/json`, which is what the error handler sends, and a route without a 2xx response gets a 200 in the
 * media types it produces.
 */
function withProducedResponses(schema: FastifySchema): FastifySchema {
  // undefined for a route declared without a schema, whatever @fastify/swagger's type says
  const produces = (schema as FastifySchema | undefined)?.produces;
  if (!produces?.length) return schema;
  const response: Record<string, unknown> = { ...(schema.response as Record<string, unknown> | undefined) };
  for (const [status, declared] of Object.entries(response)) {
    if ((declared as { $ref?: unknown } | null)?.$ref !== ErrorRef.$ref) continue;
    response[status] = {
      description: ErrorEnvelope.description,
      content: { "application/json": { schema: ErrorRef } },
    };
  }
  if (!Object.keys(response).some((status) => status.startsWith("2"))) {
    const content = Object.fromEntries(produces.map((type) => [type, { schema: { type: "string" } }]));
    response[200] = { description: `The ${produces.join(" or ")} response`, content };
  }
  return { ...schema, response };
}

const OPERATION_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** Applies each operation's `x-request-body` (see FastifySchema above) and drops the extension key. */
function withDeclaredRequestBodies(doc: OpenApiDocument): OpenApiDocument {
  for (const item of Object.values(doc.paths)) {
    for (const method of OPERATION_METHODS) {
      const operation = item?.[method] as
        (OpenAPIV3.OperationObject & { "x-request-body"?: DeclaredRequestBody }) | undefined;
      const declared = operation?.["x-request-body"];
      if (!operation || !declared) continue;
      const derived = operation.requestBody as OpenAPIV3.RequestBodyObject | undefined;
      operation.requestBody = { content: {}, ...derived, ...declared };
      delete operation["x-request-body"];
    }
  }
  return doc;
}
