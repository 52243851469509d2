/**
 * Images of an inspection: upload (raw image body, or multipart field `file`), content download, and the
 * server-sent events of status changes.
 */
import { randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import multipart from "@fastify/multipart";
import { badRequest, errorResponses, notFound, type ServiceApp } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import type { FilesDeps } from "../app.js";
import { Image, ImageParams, InspectionParams, UploadQuery } from "../schemas.js";
import { payloadTooLarge, putImage } from "../upload.js";

const RAW_TYPES = ["image/png", "image/jpeg", "application/octet-stream"];
const SSE_HEARTBEAT_MS = 15_000;

export async function imageRoutes(app: ServiceApp, deps: FilesDeps) {
  const { config, store, objects } = deps;
  const max = config.UPLOAD_MAX_BYTES;

  // Raw bodies are handed over unread, as the request stream: putImage reads them (the size limit is its job).
  app.addContentTypeParser(RAW_TYPES, (_request, payload, done) => done(null, payload));
  // busboy stops one byte past the limit, so putImage still sees the overflow and answers 413
  await app.register(multipart, { limits: { files: 1, fields: 0, parts: 2, fileSize: max + 1 } });

  app.post(
    "/api/v1/inspections/:id/images",
    {
      onRequest: [app.authenticate, app.requireRole("admin", "inspector")],
      schema: {
        tags: ["images"],
        security: [{ bearer: [] }],
        consumes: ["image/png", "image/jpeg", "multipart/form-data"],
        params: InspectionParams,
        querystring: UploadQuery,
        response: { 202: Image, ...errorResponses(400, 401, 403, 404, 413, 415) },
      },
    },
    async (request, reply) => {
      const org = request.user!.org;
      const inspection = await store.findInspection(org, request.params.id);
      // an unread body must not keep the connection: whatever follows it on the socket is not a request
      reply.header("connection", "close");
      if (!inspection) throw notFound("Inspection not found");

      let source: AsyncIterable<Buffer>;
      let filename = request.query.filename;
      if (request.isMultipart()) {
        const part = await request.file();
        if (!part || part.fieldname !== "file") throw badRequest("file_required", "Send the image in field `file`");
        source = part.file;
        filename ??= part.filename || undefined;
      } else {
        const declared = Number(request.headers["content-length"]);
        if (Number.isFinite(declared) && declared > max) throw payloadTooLarge(max);
        source = request.body as Readable;
      }

      const imageId = randomUUID();
      const key = `${config.S3_PREFIX_UPLOADS}${org}/${inspection.id}/${imageId}`;
      const stored = await putImage(source, { objects, key, maxBytes: max });
      reply.removeHeader("connection");
      const job = {
        imageId,
        inspectionId: inspection.id,
        organizationId: org,
        bucket: config.S3_BUCKET_UPLOADS,
        key,
        contentType: stored.contentType,
      };
      const ext = stored.contentType === "image/png" ? "png" : "jpg";
      const { image } = await store.acceptImage(job, {
        filename: filename ?? `${imageId}.${ext}`,
        size: stored.size,
      });
      deps.relay.kick();
      return reply.code(202).send(image);
    },
  );

  app.get(
    "/api/v1/inspections/:id/images/:imageId/content",
    {
      onRequest: [app.authenticate],
      schema: {
        tags: ["images"],
        security: [{ bearer: [] }],
        params: ImageParams,
        response: { 200: Type.Unsafe({ type: "string", format: "binary" }), ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const record = await store.findImage(request.user!.org, request.params.id, request.params.imageId);
      if (!record) throw notFound("Image not found");
      const object = await objects.get(record.objectKey);
      // a row without its object: the store lost it (or an operator removed it)
      if (!object) throw notFound("Image content not found");
      return reply
        .type(record.contentType)
        .header("content-length", String(record.size))
        .header("cache-control", "private, max-age=0")
        .send(object.body);
    },
  );

  const streams = new Set<PassThrough>();
  // open event streams never end by themselves: end them before the server waits for in-flight requests
  app.addHook("preClose", async () => {
    for (const s of streams) s.end();
  });

  app.get(
    "/api/v1/inspections/:id/events",
    {
      onRequest: [app.authenticate],
      schema: {
        tags: ["images"],
        security: [{ bearer: [] }],
        params: InspectionParams,
        produces: ["text/event-stream"],
        response: { ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const org = request.user!.org;
      const inspectionId = request.params.id;
      if (!(await store.findInspection(org, inspectionId))) throw notFound("Inspection not found");

      const stream = new PassThrough();
      streams.add(stream);
      let chain = Promise.resolve();
      const unsubscribe = deps.events.subscribe(inspectionId, (change) => {
        chain = chain
          .then(async () => {
            const record = await store.findImage(org, inspectionId, change.imageId);
            if (record && !stream.writableEnded) {
              stream.write(`event: image\nid: ${record.image.id}:${record.image.status}\n`);
              stream.write(`data: ${JSON.stringify(record.image)}\n\n`);
            }
          })
          .catch((err) => request.log.warn({ err }, "image event failed"));
      });
      const heartbeat = setInterval(() => stream.write(": ping\n\n"), SSE_HEARTBEAT_MS);
      const cleanup = () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(stream);
        stream.end();
      };
      reply.raw.on("close", cleanup);
      stream.on("close", cleanup);
      stream.write(": connected\n\n");
      return reply
        .type("text/event-stream")
        .header("cache-control", "no-cache, no-transform")
        .header("x-accel-buffering", "no")
        .send(stream);
    },
  );
}
