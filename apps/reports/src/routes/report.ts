/** GET /api/v1/inspections/:id/report: the inspection's PDF report, for every role of its organisation (P6). */
import { errorResponses, type ServiceApp, StrictObject } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import { PDF_CONTENT_TYPE, type ReportService } from "../reports.js";

const InspectionParams = StrictObject({ id: Type.String({ format: "uuid" }) });

/** `If-None-Match` lists this entity tag (or `*`). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((tag) => {
    const t = tag.trim().replace(/^W\//, "");
    return t === "*" || t === etag;
  });
}

export async function reportRoutes(app: ServiceApp, reports: ReportService) {
  app.get(
    "/api/v1/inspections/:id/report",
    {
      onRequest: [app.authenticate],
      schema: {
        tags: ["reports"],
        summary: "The inspection's PDF report",
        description:
          "Header, a summary table per defect class, each image with its boxes drawn and labelled, and a defect " +
          "list per image. 409 `not_ready` while any image is queued or processing. The ETag is the report's " +
          "content hash: `If-None-Match` with it answers 304 while the inspection is unchanged.",
        security: [{ bearer: [] }],
        params: InspectionParams,
        produces: [PDF_CONTENT_TYPE],
        response: {
          200: Type.Unsafe({ type: "string", format: "binary" }),
          304: Type.Unsafe<undefined>({ description: "Unchanged since the report of the ETag sent in If-None-Match" }),
          ...errorResponses(400, 401, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const { ref, data } = await reports.resolve(request.user!.org, request.params.id);
      const etag = `"${ref.hash}"`;
      reply.header("etag", etag).header("cache-control", "private, no-cache");
      if (matchesEtag(request.headers["if-none-match"], etag)) return reply.code(304).send();
      const report = await reports.open(ref, data);
      return reply
        .type(PDF_CONTENT_TYPE)
        .header("content-length", String(report.info.size))
        .header("content-disposition", `inline; filename="inspection-${ref.inspectionId}.pdf"`)
        .header("x-report-cache", report.cache)
        .send(report.body);
    },
  );
}
