/**
 * The gateway's routing: which public paths go where, who may call them, and what an upstream failure looks like.
 *
 * Every proxied request: per-IP rate limit → (unless public) bearer token verified locally from the cached JWKS,
 * session revocation checked, per-user rate limit → forwarded with the request id and the client address, within
 * the body limit, to the upstream, with connect and response timeouts. An upstream that is down, refuses, resets
 * or times out becomes 503/502/504 with the envelope; the client never waits past the timeout.
 *
 * Forwarding is a keep-alive undici Pool per upstream, streaming both ways. (@fastify/reply-from was measured at
 * about half the throughput of a plain Pool on this path, which matters: every API call crosses it.)
 */
import { type Readable, Transform, type TransformCallback } from "node:stream";
import {
  type AccessClaims,
  bearerToken,
  consume,
  envelope,
  HttpError,
  judge,
  type KeyValueStore,
  type Limit,
  type LimitResult,
  limitKey,
  MULTIPART_FRAMING_BYTES,
  type ServiceApp,
  SessionRevocations,
  type TokenVerifier,
  tooManyRequests,
  unauthorized,
} from "@ndt/kit";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Pool } from "undici";

export interface Upstream {
  name: string;
  origin: string;
  /** Route patterns (Fastify syntax) served by this upstream. */
  patterns: string[];
  /** Methods routed to it. @default GET, POST, PUT, PATCH, DELETE */
  methods?: readonly (typeof METHODS)[number][];
}

export interface ProxyOptions {
  upstreams: Upstream[];
  /** `METHOD /path` callable without a token. */
  publicRoutes: ReadonlySet<string>;
  /** Path prefixes callable without a token (any method). */
  publicPrefixes: readonly string[];
  verifier: TokenVerifier;
  store: KeyValueStore;
  ipLimit: Limit;
  userLimit: Limit;
  bodyLimit: number;
  /**
   * Larger limit for these path patterns (streamed uploads): the file's size limit. A multipart body may carry
   * MULTIPART_FRAMING_BYTES more (boundaries, part headers): the upstream holds the file itself to the limit exactly.
   */
  uploadLimit: { limit: number; match: RegExp };
  timeoutMs: number;
  /**
   * Server-sent event streams: the longest silence allowed between two chunks. An idle stream sends only its
   * heartbeats, so this must exceed the upstream's heartbeat interval, not the ordinary response timeout.
   */
  eventStreams: { idleTimeoutMs: number; match: RegExp };
  connectTimeoutMs: number;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set when the request body went over its limit while streaming to the upstream. */
    bodyTooLarge?: boolean;
  }
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

const SMALL_BODY_BYTES = 64 * 1024;

const MULTIPART = /^\s*multipart\/form-data\s*(;|$)/i;

/**
 * Connection-level headers (RFC 9110 §7.6.1) plus host: never forwarded in either direction. `expect` too: the
 * gateway's own server answers `100-continue` and the body is already streaming when the upstream request starts
 * (undici refuses the header, and curl sends it on every body over 1 MiB).
 */
const HOP_BY_HOP = new Set([
  "connection",
  "expect",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-request-id",
]);

class BodyLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly limit: number,
    private readonly onExceeded: () => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.onExceeded();
      cb(new HttpError(413, "payload_too_large", "The request body is too large"));
      return;
    }
    cb(null, chunk);
  }
}

function upstreamFailure(error: Error & { code?: string; statusCode?: number; cause?: unknown }): HttpError {
  const causeCode = (error.cause as { code?: string } | undefined)?.code;
  const codes = [error.code, causeCode];
  if (
    codes.some(
      (c) => c === "UND_ERR_CONNECT_TIMEOUT" || c === "UND_ERR_HEADERS_TIMEOUT" || c === "UND_ERR_BODY_TIMEOUT",
    ) ||
    error.statusCode === 504
  ) {
    return new HttpError(504, "upstream_timeout", "The upstream service did not answer in time");
  }
  if (
    codes.some((c) => c === "ECONNREFUSED" || c === "ENOTFOUND" || c === "EAI_AGAIN" || c === "EHOSTUNREACH") ||
    error.statusCode === 503
  ) {
    return new HttpError(503, "upstream_unavailable", "The upstream service is unavailable");
  }
  return new HttpError(502, "bad_gateway", "The upstream service failed");
}

export async function proxyRoutes(app: ServiceApp, opts: ProxyOptions) {
  // Bodies are not parsed here: they stream to the upstream (which validates them) through a byte counter.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (request: FastifyRequest, payload, done) => {
    const upload = opts.uploadLimit.match.test(request.url);
    const framing = upload && MULTIPART.test(request.headers["content-type"] ?? "") ? MULTIPART_FRAMING_BYTES : 0;
    const limit = upload ? opts.uploadLimit.limit + framing : opts.bodyLimit;
    const declared = Number(request.headers["content-length"] ?? 0);
    if (declared > limit) {
      done(new HttpError(413, "payload_too_large", "The request body is too large"), undefined);
      return;
    }
    const counted = new BodyLimit(limit, () => {
      request.bodyTooLarge = true;
    });
    // a client that goes away mid-body ends the counted stream too, which aborts the upstream request (pipe alone
    // does not pass an abort on: the service would wait for the rest of the upload)
    payload.once("close", () => {
      if (!request.raw.complete) counted.destroy(new Error("the client went away before its body was complete"));
    });
    done(null, payload.pipe(counted));
  });

  const isPublic = (request: FastifyRequest) => {
    const path = request.url.split("?", 1)[0]!;
    return opts.publicRoutes.has(`${request.method} ${path}`) || opts.publicPrefixes.some((p) => path.startsWith(p));
  };

  // Verify first (no I/O when the token was seen before), then ONE store command: the IP and user counters and the
  // revocation check are a single atomic script (one round trip, ~3x cheaper than three commands).
  const guard = async (request: FastifyRequest, reply: FastifyReply) => {
    let claims: AccessClaims | undefined;
    if (!isPublic(request)) {
      const token = bearerToken(request);
      if (!token) throw unauthorized();
      try {
        claims = await opts.verifier.verify(token);
      } catch {
        // bad tokens still count against the client's address: a flood of forged tokens is throttled too
        const ip = await consume(opts.store, `ip:${request.ip}`, opts.ipLimit).catch(() => undefined);
        if (ip && !ip.allowed) throw tooManyRequests(ip.resetMs / 1000);
        throw unauthorized("Invalid or expired token");
      }
    }
    let ip: LimitResult;
    let user: LimitResult | undefined;
    let revoked = false;
    try {
      const hits = [{ key: limitKey(`ip:${request.ip}`), windowMs: opts.ipLimit.windowMs }];
      if (claims) hits.push({ key: limitKey(`user:${claims.sub}`), windowMs: opts.userLimit.windowMs });
      const out = await opts.store.hitAndGet(hits, claims ? [SessionRevocations.key(claims.sid)] : []);
      ip = judge(out.hits[0]!, opts.ipLimit);
      if (claims) {
        user = judge(out.hits[1]!, opts.userLimit);
        revoked = out.values[0] !== null;
      }
    } catch (err) {
      request.log.error({ err }, "rate-limit/revocation store failed");
      throw new HttpError(503, "service_unavailable", "Service temporarily unavailable");
    }
    if (!ip.allowed) throw tooManyRequests(ip.resetMs / 1000);
    if (revoked) throw unauthorized("Invalid or expired token");
    if (user && !user.allowed) throw tooManyRequests(user.resetMs / 1000);
    reply.header("ratelimit-remaining", String(Math.min(ip.remaining, user?.remaining ?? Number.POSITIVE_INFINITY)));
  };

  for (const upstream of opts.upstreams) {
    const pool = new Pool(upstream.origin, {
      connections: 64,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      // verify upstream certificates when an upstream is https
      connect: { timeout: opts.connectTimeoutMs, rejectUnauthorized: true },
    });
    app.addHook("onClose", () => pool.close());
    const forward = async (request: FastifyRequest, reply: FastifyReply) => {
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(request.headers)) {
        if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
      }
      headers["x-request-id"] = request.id;
      headers["x-forwarded-for"] = request.ip;
      headers["x-forwarded-proto"] = request.protocol;
      try {
        const res = await pool.request({
          path: request.url,
          method: request.method as "GET",
          headers,
          body: (request.body as Readable | undefined) ?? null,
          ...(opts.eventStreams.match.test(request.url) ? { bodyTimeout: opts.eventStreams.idleTimeoutMs } : {}),
        });
        reply.code(res.statusCode);
        for (const k in res.headers) {
          const v = res.headers[k];
          // the gateway owns CORS, the request id and the connection; headers it already sends with the same
          // value (the security headers every service sets) are not set twice
          if (v === undefined || HOP_BY_HOP.has(k) || k.startsWith("access-control-") || reply.getHeader(k) === v) {
            continue;
          }
          reply.header(k, v);
        }
        // small bodies of known length are read whole (cheaper than piping a stream); the rest streams through
        const length = Number(res.headers["content-length"] ?? Number.NaN);
        if (length <= SMALL_BODY_BYTES) return reply.send(Buffer.from(await res.body.arrayBuffer()));
        return reply.send(res.body);
      } catch (error) {
        if (!request.bodyTooLarge && request.raw.destroyed && !request.raw.complete) {
          request.log.info({ upstream: upstream.name }, "client went away mid-body: upstream request aborted");
          return reply.code(499).send(envelope("client_closed_request", "The client closed the request"));
        }
        const failure = request.bodyTooLarge
          ? new HttpError(413, "payload_too_large", "The request body is too large")
          : upstreamFailure(error as Error);
        request.log.warn({ err: error, upstream: upstream.name, status: failure.statusCode }, "upstream failed");
        return reply.code(failure.statusCode).send(envelope(failure.code, failure.message));
      }
    };
    for (const url of upstream.patterns) {
      app.route({
        method: [...(upstream.methods ?? METHODS)],
        url,
        schema: { hide: true },
        preHandler: guard,
        handler: forward,
      });
    }
  }
}
