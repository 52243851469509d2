/**
 * A small HTTPS client for the local stack (the demo and the end-to-end tests): node's own `https` with the stack's
 * self-signed certificate as the only trusted CA for these requests — TLS verification stays on, nothing global
 * is changed.
 */
import { Agent, request } from "node:https";
import type { IncomingMessage } from "node:http";

export interface ApiResponse {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
  json<T = unknown>(): T;
}

export interface RequestOptions {
  json?: unknown;
  body?: Buffer;
  contentType?: string;
  token?: string;
  /** Called as the request body goes out: bytes sent so far. */
  onUpload?: (sent: number) => void;
  timeoutMs?: number;
}

export class ApiClient {
  private readonly agent: Agent;

  constructor(
    readonly baseUrl: string,
    ca: string,
    /** A request fails after this long without a byte (each request may set its own). */
    private readonly timeoutMs = 30_000,
  ) {
    this.agent = new Agent({ ca, keepAlive: true });
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const body = options.json !== undefined ? Buffer.from(JSON.stringify(options.json)) : options.body;
    const headers: Record<string, string> = { accept: "application/json, application/pdf, */*" };
    if (options.json !== undefined) headers["content-type"] = "application/json";
    else if (options.contentType) headers["content-type"] = options.contentType;
    if (body) headers["content-length"] = String(body.length);
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.baseUrl),
        { method, headers, agent: this.agent, timeout: options.timeoutMs ?? this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const payload = Buffer.concat(chunks);
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: payload,
              json: <T>() => JSON.parse(payload.toString("utf8")) as T,
            });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within the timeout`)));
      req.on("error", reject);
      if (body && options.onUpload) {
        // in slices, so a progress bar moves while the bytes go out
        const slice = 64 * 1024;
        let sent = 0;
        const writeNext = (): void => {
          while (sent < body.length) {
            const part = body.subarray(sent, sent + slice);
            sent += part.length;
            options.onUpload?.(sent);
            if (!req.write(part)) {
              req.once("drain", writeNext);
              return;
            }
          }
          req.end();
        };
        writeNext();
      } else {
        req.end(body);
      }
    });
  }

  /**
   * Follows a `text/event-stream`: `onEvent` gets each event's data; resolves when `onEvent` returns true (done),
   * the server ends the stream, or `signal` aborts.
   */
  events(
    path: string,
    token: string,
    onEvent: (data: string, event: string) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, this.baseUrl), {
        headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
        agent: this.agent,
        ...(signal ? { signal } : {}),
      });
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${path} answered ${res.statusCode}`));
          return;
        }
        let buffer = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = "message";
            const data: string[] = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length > 0 && onEvent(data.join("\n"), event)) {
              req.destroy();
              resolve();
              return;
            }
          }
        });
        res.on("end", () => resolve());
        res.on("error", (err) => (signal?.aborted ? resolve() : reject(err)));
      });
      req.on("error", (err) => (signal?.aborted ? resolve() : reject(err)));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
