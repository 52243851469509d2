/**
 * A TCP proxy on a free loopback port, for cutting a client's connections to a real server on purpose: what a
 * network failure or a broker restart does, without touching the shared server the other tests use.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface TcpProxy {
  host: string;
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Destroy every open connection (both sides); new connections are still accepted. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function tcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const state = { accepted: 0 };
  const server = createServer((client) => {
    state.accepted++;
    const upstream = createConnection({ host: targetHost, port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("proxy has no port");
  const dropAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    host: "127.0.0.1",
    port: address.port,
    get accepted() {
      return state.accepted;
    },
    dropAll,
    async close() {
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
