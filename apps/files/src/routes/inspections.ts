/** Inspections: create, list (keyset cursor), detail with images and summary. Org-scoped (P6). */
import { errorResponses, notFound, type ServiceApp } from "@ndt/kit";
import type { FilesDeps } from "../app.js";
import {
  CreateInspectionBody,
  Inspection,
  InspectionDetail,
  InspectionList,
  InspectionParams,
  ListQuery,
} from "../schemas.js";

export async function inspectionRoutes(app: ServiceApp, deps: FilesDeps) {
  app.post(
    "/api/v1/inspections",
    {
      onRequest: [app.authenticate, app.requireRole("admin", "inspector")],
      schema: {
        tags: ["inspections"],
        security: [{ bearer: [] }],
        body: CreateInspectionBody,
        response: { 201: Inspection, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const user = request.user!;
      const inspection = await deps.store.createInspection(user.org, user.sub, request.body);
      return reply.code(201).send(inspection);
    },
  );

  app.get(
    "/api/v1/inspections",
    {
      onRequest: [app.authenticate],
      schema: {
        tags: ["inspections"],
        security: [{ bearer: [] }],
        querystring: ListQuery,
        response: { 200: InspectionList, ...errorResponses(400, 401) },
      },
    },
    async (request) => deps.store.listInspections(request.user!.org, request.query.limit, request.query.cursor),
  );

  app.get(
    "/api/v1/inspections/:id",
    {
      onRequest: [app.authenticate],
      schema: {
        tags: ["inspections"],
        security: [{ bearer: [] }],
        params: InspectionParams,
        response: { 200: InspectionDetail, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const detail = await deps.store.inspectionDetail(request.user!.org, request.params.id);
      if (!detail) throw notFound("Inspection not found");
      return detail;
    },
  );
}
