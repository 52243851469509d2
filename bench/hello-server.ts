/** The baseline of the HTTP benchmarks: a bare Fastify "hello" server, nothing else. */
import Fastify from "fastify";

const app = Fastify({ logger: false });
app.get("/", async () => ({ hello: "world" }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 18079) });
process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
