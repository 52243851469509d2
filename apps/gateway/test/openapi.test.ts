/**
 * The merged OpenAPI document, from the real auth, files and reports services (on the local stack's embedded
 * adapters: only PostgreSQL is needed) behind a real gateway: what it says each route answers is checked operation
 * by operation, and what it says about tokens against what the gateway does.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApp as buildAuth, loadAuthConfig } from "@ndt/auth";
import { buildApp as buildFiles, loadFilesConfig } from "@ndt/files";
import type { OpenApiDocument, ServiceApp } from "@ndt/kit";
import { testDatabase } from "@ndt/kit/testing";
import { buildApp as buildReports, loadReportsConfig } from "@ndt/reports";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp, loadGatewayConfig } from "../src/index.js";

const db = await testDatabase("gateway_openapi");

const METHODS = ["get", "put", "post", "delete", "patch"] as const;

type Operation = NonNullable<NonNullable<OpenApiDocument["paths"][string]>["get"]>;
type ResponseObject = { description: string; content?: Record<string, { schema?: unknown }> };

const origin = (app: ServiceApp) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

describe.skipIf(!db)("the merged OpenAPI document", () => {
  let dir: string;
  const services: ServiceApp[] = [];
  let gateway: ServiceApp;
  let doc: OpenApiDocument;
  let operations: { method: (typeof METHODS)[number]; path: string; operation: Operation }[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "gateway-openapi-"));
    const shared = { DATABASE_URL: db!.url, CACHE_BACKEND: "postgres", LOG_LEVEL: "silent" };
    const auth = await buildAuth({
      config: loadAuthConfig({ ...shared, SIGNING_KEY_SECRET: "openapi-test-secret-0123456789abcdef" }),
    });
    services.push(auth);
    await auth.listen({ host: "127.0.0.1", port: 0 });
    const objects = {
      OBJECT_STORE: "directory",
      OBJECT_STORE_DIR: dir,
      JWKS_URL: `${origin(auth)}/.well-known/jwks.json`,
    };
    const files = await buildFiles({
      config: loadFilesConfig({ ...shared, ...objects, QUEUE_BACKEND: "postgres", S3_BUCKET_UPLOADS: "uploads" }),
    });
    services.push(files);
    const reports = await buildReports({ config: loadReportsConfig({ ...shared, ...objects }) });
    services.push(reports);
    for (const service of [files, reports]) await service.listen({ host: "127.0.0.1", port: 0 });
    gateway = await buildApp({
      config: loadGatewayConfig({
        ...shared,
        AUTH_URL: origin(auth),
        FILES_URL: origin(files),
        REPORTS_URL: origin(reports),
      }),
    });
    const res = await gateway.inject({ method: "GET", url: "/api/v1/openapi.json" });
    expect(res.statusCode).toBe(200);
    doc = res.json();
    operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      METHODS.flatMap((method) => (item?.[method] ? [{ method, path, operation: item[method]! }] : [])),
    );
  });

  afterAll(async () => {
    await gateway?.close();
    for (const service of services.reverse()) await service.close();
    await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  const responses = (path: string, method: (typeof METHODS)[number]) =>
    doc.paths[path]![method]!.responses as Record<string, ResponseObject>;

  it("holds every service's routes", () => {
    expect(operations.map(({ method, path }) => `${method.toUpperCase()} ${path}`)).toEqual(
      expect.arrayContaining([
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/password",
        "POST /api/v1/org/members",
        "GET /.well-known/jwks.json",
        "GET /api/v1/inspections/{id}",
        "GET /api/v1/inspections/{id}/events",
        "GET /api/v1/inspections/{id}/report",
      ]),
    );
  });

  it("documents the image events route's 200 as a text/event-stream", () => {
    const events = responses("/api/v1/inspections/{id}/events", "get");
    expect(Object.keys(events["200"]?.content ?? {})).toEqual(["text/event-stream"]);
    const report = responses("/api/v1/inspections/{id}/report", "get");
    expect(Object.keys(report["200"]?.content ?? {})).toEqual(["application/pdf"]);
  });

  it("documents the password change's 429 (its current password counts against the login throttle)", () => {
    expect(Object.keys(responses("/api/v1/auth/password", "post"))).toEqual(expect.arrayContaining(["401", "429"]));
  });

  it("documents every error answer as the JSON envelope, whatever the route's success media type", () => {
    const wrong = operations.flatMap(({ method, path, operation }) =>
      Object.entries(operation.responses as Record<string, ResponseObject>)
        .filter(([status]) => Number(status) >= 400)
        .filter(
          ([, response]) =>
            JSON.stringify(response.content) !==
            JSON.stringify({ "application/json": { schema: { $ref: "#/components/schemas/ErrorEnvelope" } } }),
        )
        .map(([status]) => `${method.toUpperCase()} ${path} ${status}`),
    );
    expect(wrong).toEqual([]);
    expect(doc.components?.schemas?.ErrorEnvelope).toBeDefined();
  });

  it("lists 429 on every route (the per-address limit) and 401 on every one with bearer security", () => {
    const gaps: string[] = [];
    for (const { method, path, operation } of operations) {
      const name = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(operation.responses);
      if (!statuses.includes("429")) gaps.push(`${name}: no 429`);
      const secured = (operation.security ?? []).some((requirement) => "bearer" in requirement);
      if (secured && !statuses.includes("401")) gaps.push(`${name}: bearer security but no 401`);
    }
    expect(gaps).toEqual([]);
  });

  it("lists the gateway's own 502, 503 and 504 on every route, and 413 on every one that takes a body", () => {
    const gaps: string[] = [];
    for (const { method, path, operation } of operations) {
      const statuses = Object.keys(operation.responses);
      const expected = ["502", "503", "504", ...(operation.requestBody ? ["413"] : [])];
      for (const status of expected.filter((s) => !statuses.includes(s))) {
        gaps.push(`${method.toUpperCase()} ${path}: no ${status}`);
      }
    }
    expect(gaps).toEqual([]);
    expect(responses("/api/v1/auth/login", "post")["504"]?.description).toContain("upstream_timeout");
    expect(responses("/api/v1/inspections/{id}/images", "post")["413"]).toBeDefined();
  });

  it("says a token is needed exactly where the gateway asks for one", async () => {
    const mismatches: string[] = [];
    for (const { method, path, operation } of operations) {
      const url = path.replace(/\{[^}]+\}/g, () => randomUUID());
      const res = await gateway.inject({ method: method.toUpperCase() as "GET", url });
      const secured = (operation.security ?? []).some((requirement) => "bearer" in requirement);
      const refused = res.statusCode === 401;
      if (secured !== refused)
        mismatches.push(`${method.toUpperCase()} ${path}: documented ${secured}, got ${res.statusCode}`);
    }
    expect(mismatches).toEqual([]);
  });
});
