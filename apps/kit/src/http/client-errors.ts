/**
 * Requests Node's HTTP parser refuses before Fastify sees them: headers or URL over the size limit, a malformed
 * request line, header or chunked framing, a request that took too long to arrive. Node (and Fastify's default
 * handler) answer them with their own body and none of the headers every other answer carries; here they get the
 * envelope, the security headers and a request id like the rest (CONTRACTS.md §3, GUARDRAILS P12), and
 * `connection: close`: past a parse error nothing tells where the next request on the connection would start.
 */
import { randomUUID } from "node:crypto";
import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { codeForStatus, envelope } from "../errors.js";
import type { Logger } from "../logger.js";

/**
 * How long the connection stays open after the answer, its further bytes read and dropped. Closing a socket with
 * unread input makes the kernel reset the connection, and a reset can destroy the answer before the client reads
 * it: a client still sending its over-long headers would see ECONNRESET instead of 431.
 */
const LINGER_MS = 2_000;

/** The status and message for a parser error code (Node's own choice of status for each). */
function answerFor(errorCode: string | undefined): { status: number; message: string } {
  switch (errorCode) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, message: "The request headers or URL are too large" };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, message: "The request's chunk extensions are too large" };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, message: "The request took too long to arrive" };
    default:
      return { status: 400, message: "The request is not valid HTTP" };
  }
}

/** The raw HTTP/1.1 answer: status line, headers, the envelope. */
export function clientErrorResponse(
  errorCode: string | undefined,
  headers: Record<string, string>,
  requestId: string,
): string {
  const { status, message } = answerFor(errorCode);
  const body = JSON.stringify(envelope(codeForStatus(status), message));
  const all: Record<string, string> = {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "x-request-id": requestId,
    connection: "close",
  };
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines.join("")}\r\n${body}`;
}

/**
 * A Fastify `clientErrorHandler`, or a `clientError` listener of any Node HTTP(S) server (the local stack's TLS
 * proxy). `headers` are the security headers every answer carries (kit's `helmetHeaders()`).
 *
 * The answer must not land inside another one. With no response in flight on the socket it goes at once. A response
 * in flight for a request already read whole (pipelined requests: the refused one came after it) is let finish
 * first, with those queued behind it. A response in flight for the very request whose body broke the framing is
 * replaced by the answer if none of it went out yet (as Node does), and cut off otherwise.
 */
export function clientErrorHandler(log: () => Pick<Logger, "info">, headers: Record<string, string>) {
  // the parser reports each further chunk of a connection it gave up on again: answer the first report only
  const answered = new WeakSet<Duplex>();
  return (error: Error & { code?: string }, socket: Duplex): void => {
    if (error.code === "ECONNRESET" || socket.destroyed || answered.has(socket)) return;
    answered.add(socket);
    const answer = () => {
      if (socket.destroyed || !socket.writable) return;
      const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (inFlight && inFlight.req.complete) {
        // resOnFinish (Node's listener, added first) has moved the socket on to the next response by then
        inFlight.once("finish", answer);
        return;
      }
      if (inFlight?.headersSent) {
        log().info({ err: error }, "connection dropped: the HTTP parser refused a request mid-response");
        socket.destroy();
        return;
      }
      const requestId = randomUUID();
      log().info({ err: error, requestId }, "request refused by the HTTP parser");
      socket.end(clientErrorResponse(error.code, headers, requestId));
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    };
    answer();
  };
}
