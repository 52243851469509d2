/**
 * The platform's one OpenAPI document: the upstream services' documents (each built from its route schemas)
 * merged into the gateway's. Upstream documents are cached; a failing upstream keeps its last good copy.
 */
import type { OpenApiDocument } from "@ndt/kit";

export class OpenApiMerger {
  private readonly cache = new Map<string, OpenApiDocument>();
  private fetchedAt = 0;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly upstreams: readonly string[],
    private readonly maxAgeMs: number,
    private readonly onError: (err: unknown, upstream: string) => void,
  ) {}

  /** Refetch when stale (single-flight); never rejects. */
  refreshIfStale(): Promise<void> {
    if (Date.now() - this.fetchedAt < this.maxAgeMs && this.cache.size > 0) return Promise.resolve();
    this.inflight ??= Promise.all(
      this.upstreams.map(async (origin) => {
        try {
          const res = await fetch(`${origin}/openapi.json`, { signal: AbortSignal.timeout(2_000) });
          if (!res.ok) throw new Error(`answered ${res.status}`);
          this.cache.set(origin, (await res.json()) as OpenApiDocument);
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
}
