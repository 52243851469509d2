import { Agent, request as httpRequest } from "node:http";

export interface KeepAliveExchange {
  status: number;
  /** The response's Connection header ("close" when the server ends the connection after it). */
  connection: string | undefined;
  /** Whether the request went over a connection an earlier request had used. */
  reused: boolean;
}

/**
 * A client holding one keep-alive connection to `127.0.0.1:port`: a POST sends `body` (JSON content type) whole,
 * declared, or chunked with `{ chunked: true }`; a request without a body is a GET. Tests use it to see whether a
 * server kept the connection after an answer.
 */
export function keepAliveClient(port: number): {
  send: (
    path: string,
    body?: Buffer,
    options?: { chunked?: boolean; contentType?: string },
  ) => Promise<KeepAliveExchange>;
  close: () => void;
} {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (path: string, body?: Buffer, options: { chunked?: boolean; contentType?: string } = {}) =>
    new Promise<KeepAliveExchange>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          method: body ? "POST" : "GET",
          path,
          agent,
          headers: body
            ? {
                "content-type": options.contentType ?? "application/json",
                ...(options.chunked ? { "transfer-encoding": "chunked" } : { "content-length": body.length }),
              }
            : {},
        },
        (res) => {
          res.resume();
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reused: req.reusedSocket }),
          );
        },
      );
      req.on("error", reject);
      if (body && options.chunked) {
        // several chunks, so part of the body is still to come when the answer is decided
        for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024));
        req.end();
      } else req.end(body);
    });
  return { send, close: () => agent.destroy() };
}
