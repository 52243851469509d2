/**
 * Images of an inspection: upload (raw image body, or multipart field `file`), content download, and the
 * server-sent events of status changes.
 *
 * Upload errors: 400 `file_required` (a multipart body without any part), 400 `unexpected_part` (a multipart part
 * other than the one `file`: the image travels alone, nothing beside it is dropped unseen), 400 `malformed_multipart`
 * (a multipart body busboy cannot parse: no boundary, truncated, not multipart at all), 413 `payload_too_large`, 415
 * `unsupported_media_type` (the bytes are not a PNG/JPEG, whatever the Content-Type says).
 */
import { randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { finished } from "node:stream/promises";
import multipart, { type Multipart } from "@fastify/multipart";
import { badRequest, errorResponses, MULTIPART_FRAMING_BYTES, notFound, type ServiceApp } from "@ndt/kit";
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { FastifyRequest } from "fastify";
import type { FilesDeps } from "../app.js";
import { FileName, Image, ImageParams, InspectionParams, UploadQuery } from "../schemas.js";
import { toImage } from "../store.js";
import { payloadTooLarge, putImage, type StoredObject } from "../upload.js";

export async function imageRoutes(app: ServiceApp, deps: FilesDeps) {
  const { config, store, objects } = deps;
  const max = config.UPLOAD_MAX_BYTES;

  // Every body but multipart is the raw image, whatever its declared type (the magic bytes decide): handed over
  // unread, as the request stream; putImage reads it (the size limit is its job). Only this scope's parsers go.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
  // Every part is a stream, named or not (`curl -F 'file=<x.png'` sends no filename: busboy's default would make it
  // a field, held in memory). Two parts at most: the second is read only to refuse it by name. busboy stops one byte
  // past the limit, so putImage still sees the overflow and answers 413.
  await app.register(multipart, {
    isPartAFile: () => true,
    limits: { files: 2, fields: 0, parts: 2, fileSize: max + 1 },
  });

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
          "Content-Type says) or multipart field `file`, alone (with or without a filename). 400 `file_required` " +
          "(a multipart body without any part), 400 `unexpected_part` (a multipart part other than the one `file`), " +
          "400 `malformed_multipart` (a multipart body that cannot be parsed), 413 `payload_too_large` (over the " +
          "size limit: the file's bytes decide, multipart framing aside), 415 `unsupported_media_type` " +
          "(not a PNG/JPEG).",
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

      let upload: ImageBody;
      if (request.isMultipart()) {
        upload = await multipartImage(request, max);
      } else {
        const declared = Number(request.headers["content-length"]);
        if (Number.isFinite(declared) && declared > max) throw payloadTooLarge(max);
        upload = { bytes: request.body as Readable, filename: undefined, release: () => undefined };
      }
      const filename = request.query.filename ?? upload.filename;

      const imageId = randomUUID();
      const key = `${config.S3_PREFIX_UPLOADS}${org}/${inspection.id}/${imageId}`;
      let stored: StoredObject;
      try {
        stored = await putImage(upload.bytes, { objects, key, maxBytes: max });
      } finally {
        upload.release();
      }
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

/** An upload's image: its bytes, the name its sender gave it, and `release` once the bytes are read (or given up). */
interface ImageBody {
  bytes: AsyncIterable<Buffer>;
  filename: string | undefined;
  release(): void;
}

/**
 * The image of a multipart body: its one part, `file`. The file's bytes are held to `max` by putImage (busboy lets
 * one byte past it through); the body as a whole, counted as it arrives, to `max` + MULTIPART_FRAMING_BYTES. A part
 * other than the one `file`, before it or after it, is refused (400 `unexpected_part`) before the object is kept;
 * the body's end is awaited (its epilogue counted) before the bytes end, so an accepted upload was read whole.
 */
async function multipartImage(request: FastifyRequest, max: number): Promise<ImageBody> {
  const bound = max + MULTIPART_FRAMING_BYTES;
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > bound) throw payloadTooLarge(max);

  const raw = request.raw;
  const parts = request.parts();
  // the first next() starts the parser (the body is piped to busboy from then on): the counter goes beside it
  const first = parts.next();
  let file: Readable | undefined;
  let seen = 0;
  let exceeded: (err: Error) => void = () => undefined;
  const tooLarge = new Promise<never>((_resolve, reject) => (exceeded = reject));
  tooLarge.catch(() => undefined);
  function release() {
    raw.off("data", count);
  }
  function count(chunk: Buffer) {
    seen += chunk.length;
    if (seen <= bound) return;
    release();
    raw.unpipe(); // no more parsing: the rest of the body is kit's to settle once the 413 goes
    const err = payloadTooLarge(max);
    file?.destroy(err);
    exceeded(err);
  }
  raw.on("data", count);
  /** `step`, or the 413 when the body goes over its bound first; busboy's own errors made 400. */
  const within = <T>(step: Promise<T>) =>
    Promise.race([step, tooLarge]).catch((err: unknown) => {
      throw multipartError(err);
    });

  try {
    const head = await within(first);
    if (head.done) throw badRequest("file_required", "Send the image in multipart field `file`");
    const part = head.value;
    if (part.type !== "file" || part.fieldname !== "file") throw unexpectedPart(`found ${partName(part)}`);
    // the part's own name passes the rule `?filename=` does (kit's check sees only the query and the JSON body)
    const filename = part.filename || undefined;
    if (filename !== undefined && !Value.Check(FileName, filename)) {
      throw badRequest(
        "validation_failed",
        `The file part's filename must be 1 to 255 characters: ${FileName.description}`,
      );
    }
    file = part.file;
    async function* bytes(stream: Readable): AsyncGenerator<Buffer> {
      try {
        yield* stream;
      } catch (err) {
        throw multipartError(err);
      }
      // before the bytes end (and the object is kept): no second part, and the body read to its end, its epilogue
      // counted (busboy is done at the closing boundary and lets the rest pass unread)
      const after = await within(parts.next());
      if (!after.done) throw unexpectedPart(`${partName(after.value)} follows it`);
      raw.resume();
      await within(finished(raw));
    }
    return { bytes: bytes(file), filename, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** A part's name as a message shows it (bounded: it is the client's text). */
const partName = (part: Multipart) =>
  (part.fieldname as string | undefined) === undefined
    ? "a part without a name"
    : `part ${JSON.stringify(part.fieldname.slice(0, 100))}`;

const unexpectedPart = (what: string) =>
  badRequest("unexpected_part", `The multipart body must hold one part, the image in field \`file\`: ${what}`);

/**
 * busboy reports a body it cannot parse as a plain Error ("Multipart: Boundary not found", "Unexpected end of
 * multipart data", "... terminated early ..."); @fastify/multipart's own errors carry their status (413 limits,
 * 400 premature close) and pass as they are.
 */
function multipartError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { statusCode?: unknown }).statusCode === "number") return err;
  return badRequest("malformed_multipart", "The multipart body is malformed");
}
