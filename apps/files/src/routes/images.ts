/**
 * Images of an inspection: upload (raw image body, or multipart field `file`), content download, and the
 * server-sent events of status changes.
 *
 * Upload errors: 400 `file_required` (multipart without field `file`), 400 `malformed_multipart` (a multipart body
 * busboy cannot parse: no boundary, truncated, not multipart at all), 413 `payload_too_large`, 415
 * `unsupported_media_type` (the bytes are not a PNG/JPEG, whatever the Content-Type says).
 */
import { randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import multipart from "@fastify/multipart";
import { badRequest, errorResponses, notFound, type ServiceApp } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { FilesDeps } from "../app.js";
import { FileName, Image, ImageParams, InspectionParams, UploadQuery } from "../schemas.js";
import { toImage } from "../store.js";
import { payloadTooLarge, putImage } from "../upload.js";

export async function imageRoutes(app: ServiceApp, deps: FilesDeps) {
  const { config, store, objects } = deps;
  const max = config.UPLOAD_MAX_BYTES;

  // Every body but multipart is the raw image, whatever its declared type (the magic bytes decide): handed over
  // unread, as the request stream; putImage reads it (the size limit is its job). Only this scope's parsers go.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
  // busboy stops one byte past the limit, so putImage still sees the overflow and answers 413
  await app.register(multipart, { limits: { files: 1, fields: 0, parts: 2, fileSize: max + 1 } });

  app.post(
    "/api/v1/inspections/:id/images",
    {
      onRequest: [app.authenticate, app.requireRole("admin", "inspector")],
      schema: {
        tags: ["images"],
        security: [{ bearer: [] }],
        summary: "Upload an image",
        description:
          "The raw bytes (`image/png` or `image/jpeg`; the type is decided by the magic bytes, whatever the " +
          "Content-Type says) or multipart field `file`. 400 `file_required` (multipart without field `file`), " +
          "400 `malformed_multipart` (a multipart body that cannot be parsed), 413 `payload_too_large`, " +
          "415 `unsupported_media_type` (not a PNG/JPEG).",
        "x-request-body": {
          required: true,
          content: {
            "image/png": { schema: { type: "string", format: "binary" } },
            "image/jpeg": { schema: { type: "string", format: "binary" } },
            "application/octet-stream": { schema: { type: "string", format: "binary" } },
            "multipart/form-data": {
              schema: {
                type: "object",
                required: ["file"],
                properties: { file: { type: "string", format: "binary" } },
              },
            },
          },
        },
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
        const part = await request.file().catch((err: unknown) => {
          throw multipartError(err);
        });
        if (!part || part.fieldname !== "file") throw badRequest("file_required", "Send the image in field `file`");
        source = multipartErrors(part.file);
        // the part's own name passes the rule `?filename=` does (kit's check sees only the query and the JSON body)
        const partName = part.filename || undefined;
        if (partName !== undefined && !Value.Check(FileName, partName)) {
          throw badRequest(
            "validation_failed",
            `The file part's filename must be 1 to 255 characters: ${FileName.description}`,
          );
        }
        filename ??= partName;
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
      let image: Image;
      try {
        ({ image } = await store.acceptImage(job, { filename: filename ?? `${imageId}.${ext}`, size: stored.size }));
      } catch (err) {
        // A failed write usually means no row will ever point at the object: remove it rather than leave an orphan.
        // But a connection lost on COMMIT can hide a write that went through: then the upload was accepted (its
        // job is in the outbox) and the object is kept. When that cannot be told, the object is kept too: an
        // orphan costs storage, a row without its object loses an upload.
        const written = await store.findImage(org, inspection.id, imageId).catch(() => null);
        if (written) {
          request.log.warn({ err, imageId }, "the image row was written although its transaction reported an error");
          deps.relay.kick();
          return reply.code(202).send(written.image);
        }
        if (written === null) {
          request.log.error({ err, key }, "upload failed; its object is kept (whether its row exists is unknown)");
        } else {
          await objects
            .delete(key)
            .catch((deleteErr: unknown) => request.log.error({ err: deleteErr, key }, "orphan upload not deleted"));
        }
        throw err;
      }
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
        summary: "Follow the inspection's image status changes",
        description:
          "Server-sent events: one `image` event per image status change, `data:` the Image. A client reconnecting " +
          "with `Last-Event-ID` (as EventSource does) first gets every image's current state, so changes made while " +
          "it was away are not lost. The stream ends when its access token expires, and within a heartbeat (15 s) " +
          "of a logout or a revoked session: reconnect with a fresh token.",
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
      const send = (image: Image) => {
        if (stream.writableEnded) return;
        stream.write(`event: image\nid: ${image.id}:${image.status}\n`);
        stream.write(`data: ${JSON.stringify(image)}\n\n`);
      };
      let chain = Promise.resolve();
      const unsubscribe = deps.events.subscribe(inspectionId, (change) => {
        chain = chain
          .then(async () => {
            // the state the change left, not the row's state by now (it may have moved on); `done` is final, so
            // its row holds the detections this change made
            const { state } = change;
            const image =
              state && state.status !== "done"
                ? toImage({ id: change.imageId, ...state }, [])
                : (await store.findImage(org, inspectionId, change.imageId))?.image;
            if (image) send(image);
          })
          .catch((err) => request.log.warn({ err }, "image event failed"));
      });
      // A reconnecting client (EventSource sends Last-Event-ID) missed what changed while it was away, and no history
      // is kept: it gets every image's current state first. Subscribed before this read, so a change during it is
      // sent after it (at worst once more), never lost.
      if (request.headers["last-event-id"] !== undefined) {
        chain = chain
          .then(async () => {
            for (const image of await store.imagesOf(org, inspectionId)) send(image);
          })
          .catch((err) => request.log.warn({ err }, "catching up a reconnected event stream failed"));
      }
      // the stream must not outlive the token that opened it: it ends at the token's expiry (the client reconnects
      // with a fresh one), and at the first heartbeat after a logout or a revocation (unknown counts as revoked)
      const user = request.user!;
      const expiry = setTimeout(() => stream.end(), Math.max(0, user.exp * 1000 - Date.now()));
      const heartbeat = setInterval(() => {
        app.stillAuthenticated(user).then(
          (live) => {
            if (stream.writableEnded) return;
            if (live) stream.write(": ping\n\n");
            else stream.end();
          },
          () => stream.end(),
        );
      }, config.EVENT_STREAM_HEARTBEAT_MS);
      const cleanup = () => {
        clearTimeout(expiry);
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

/**
 * busboy reports a body it cannot parse as a plain Error ("Multipart: Boundary not found", "Unexpected end of
 * multipart data", "... terminated early ..."); @fastify/multipart's own errors carry their status (413 limits,
 * 400 premature close) and pass as they are.
 */
function multipartError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { statusCode?: unknown }).statusCode === "number") return err;
  return badRequest("malformed_multipart", "The multipart body is malformed");
}

/** The file part's bytes, its parse errors made 400 `malformed_multipart`. */
async function* multipartErrors(file: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* file;
  } catch (err) {
    throw multipartError(err);
  }
}
