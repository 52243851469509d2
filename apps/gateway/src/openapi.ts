/**
 * The platform's one OpenAPI document: the upstream services' documents (each built from its route schemas)
 * merged into the gateway's. Upstream documents are cached; a failing upstream keeps its last good copy.
 *
 * An upstream's document says what the service answers; the gateway answers some requests itself (proxy.ts): 429
 * over the per-address or per-user limit, on every route it passes on; 401 without a valid token, on every route
 * that is not public; 413 for a body over its limit, on every route that takes one; and 502, 503 or 504 when the
 * service behind it fails, cannot be reached (or the gateway's rate-limit store cannot) or does not answer in time.
 * Each upstream operation gets those responses where it lacks them.
 */
import { ErrorEnvelope, type OpenApiDocument } from "@ndt/kit";

type Operation = NonNullable<NonNullable<OpenApiDocument["paths"][string]>["get"]>;
type Response = Operation["responses"][string];
type Schema = NonNullable<NonNullable<OpenApiDocument["components"]>["schemas"]>[string];

/** Which routes the gateway lets through without a token. */
export interface PublicRoutes {
  /** `METHOD /path` callable without a token. */
  routes: ReadonlySet<string>;
  /** Path prefixes callable without a token (any method). */
  prefixes: readonly string[];
}

const OPERATION_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

const errorContent = () => ({
  "application/json": { schema: { $ref: "#/components/schemas/ErrorEnvelope" } },
});

/** The answers the gateway gives itself, by status. */
const GATEWAY_ANSWERS = {
  unauthorized: (): Response => ({
    description: "No valid access token: missing, malformed, expired or of an ended session (`unauthorized`)",
    content: errorContent(),
  }),
  payloadTooLarge: (): Response => ({
    description: "Body over the gateway's limit for the route (`payload_too_large`)",
    content: errorContent(),
  }),
  badGateway: (): Response => ({
    description: "The service behind the gateway failed: the connection broke or it answered badly (`bad_gateway`)",
    content: errorContent(),
  }),
  unavailable: (): Response => ({
    description:
      "The service behind the gateway cannot be reached (`upstream_unavailable`), or the gateway's rate-limit " +
      "store cannot (`service_unavailable`)",
    content: errorContent(),
  }),
  gatewayTimeout: (): Response => ({
    description: "The service behind the gateway did not answer within the gateway's timeout (`upstream_timeout`)",
    content: errorContent(),
  }),
  tooManyRequests: (): Response => ({
    description: "Over the gateway's request limit per client address or per user (`too_many_requests`)",
    headers: {
      "retry-after": { description: "Seconds until the limit resets", schema: { type: "integer", minimum: 1 } },
    },
    content: errorContent(),
  }),
};

export class OpenApiMerger {
  private readonly cache = new Map<string, OpenApiDocument>();
  private fetchedAt = 0;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly upstreams: readonly string[],
    private readonly maxAgeMs: number,
    private readonly onError: (err: unknown, upstream: string) => void,
    private readonly publicRoutes: PublicRoutes = { routes: new Set(), prefixes: [] },
  ) {}

  /** Refetch when stale (single-flight); never rejects. */
  refreshIfStale(): Promise<void> {
    if (Date.now() - this.fetchedAt < this.maxAgeMs && this.cache.size > 0) return Promise.resolve();
    this.inflight ??= Promise.all(
      this.upstreams.map(async (origin) => {
        try {
          const res = await fetch(`${origin}/openapi.json`, { signal: AbortSignal.timeout(2_000) });
          if (!res.ok) throw new Error(`answered ${res.status}`);
          this.cache.set(origin, this.withGatewayAnswers((await res.json()) as OpenApiDocument));
        } catch (err) {
          this.onError(err, origin);
        }
      }),
    ).then(() => {
      this.fetchedAt = Date.now();
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** The gateway's own document with every cached upstream document merged in. */
  merge(own: OpenApiDocument): OpenApiDocument {
    const doc: OpenApiDocument = {
      ...own,
      paths: { ...own.paths },
      components: { ...own.components, schemas: { ...own.components?.schemas } },
      tags: [...(own.tags ?? [])],
    };
    for (const upstream of this.cache.values()) {
      Object.assign(doc.paths, upstream.paths);
      Object.assign(doc.components!.schemas!, upstream.components?.schemas);
      if (upstream.components?.securitySchemes) {
        doc.components!.securitySchemes = {
          ...doc.components!.securitySchemes,
          ...upstream.components.securitySchemes,
        };
      }
      for (const tag of upstream.tags ?? []) if (!doc.tags!.some((t) => t.name === tag.name)) doc.tags!.push(tag);
    }
    return doc;
  }

  /** Whether the gateway lets `method path` (an OpenAPI path template) through without a token. */
  isPublic(method: string, path: string): boolean {
    const { routes, prefixes } = this.publicRoutes;
    return routes.has(`${method.toUpperCase()} ${path}`) || prefixes.some((prefix) => path.startsWith(prefix));
  }

  /** An upstream document with the gateway's own answers added to each operation that lacks them. */
  private withGatewayAnswers(upstream: OpenApiDocument): OpenApiDocument {
    for (const [path, item] of Object.entries(upstream.paths ?? {})) {
      for (const method of OPERATION_METHODS) {
        const operation = item?.[method];
        if (!operation) continue;
        const responses = (operation.responses ??= {});
        responses["429"] ??= GATEWAY_ANSWERS.tooManyRequests();
        if (!this.isPublic(method, path)) responses["401"] ??= GATEWAY_ANSWERS.unauthorized();
        if (operation.requestBody) responses["413"] ??= GATEWAY_ANSWERS.payloadTooLarge();
        responses["502"] ??= GATEWAY_ANSWERS.badGateway();
        responses["503"] ??= GATEWAY_ANSWERS.unavailable();
        responses["504"] ??= GATEWAY_ANSWERS.gatewayTimeout();
      }
    }
    const components = (upstream.components ??= {});
    (components.schemas ??= {}).ErrorEnvelope ??= ErrorEnvelope as Schema;
    return upstream;
  }
}
