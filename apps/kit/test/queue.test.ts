/**
 * The JobQueue contract against RabbitMQ (through a TCP proxy this test controls, so it can cut the connections)
 * and against the embedded PostgreSQL queue.
 */
import { Type } from "@sinclair/typebox";
import amqp from "amqplib";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { PgDatabase, PostgresConfig } from "../src/postgres/pg.js";
import { AmqpQueue } from "../src/queue/amqp.js";
import type { JobQueue } from "../src/queue/port.js";
import { PgQueue } from "../src/queue/postgres.js";
import {
  type JobQueueHarness,
  jobQueueContract,
  serverUnavailable,
  tcpProxy,
  testDatabase,
} from "../src/testing/index.js";

const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

async function amqpHarness(): Promise<JobQueueHarness | undefined> {
  const target = new URL(AMQP_URL);
  try {
    const probe = await amqp.connect(AMQP_URL, { timeout: 3_000 });
    await probe.close();
  } catch (err) {
    return serverUnavailable(`RabbitMQ (${AMQP_URL})`, err);
  }
  const proxy = await tcpProxy(target.hostname, Number(target.port || 5672));
  const viaProxy = new URL(AMQP_URL);
  viaProxy.hostname = proxy.host;
  viaProxy.port = String(proxy.port);
  const declared = new Set<string>();
  return {
    async open() {
      const q = new AmqpQueue({
        AMQP_URL: viaProxy.toString(),
        AMQP_HEARTBEAT_SEC: 5,
        AMQP_CONNECT_TIMEOUT_MS: 3_000,
      });
      const declare = q.declare.bind(q);
      q.declare = async (name, opts) => {
        declared.add(name);
        return declare(name, opts);
      };
      return q;
    },
    async dropConnections() {
      proxy.dropAll();
    },
    async crash(q: JobQueue) {
      // a dead process: its sockets close without any AMQP goodbye, and it never reconnects
      proxy.dropAll();
      await q.close();
    },
    async cleanup() {
      await proxy.close();
      const connection = await amqp.connect(AMQP_URL);
      const ch = await connection.createChannel();
      for (const name of declared) {
        await ch.deleteQueue(name);
        await ch.deleteQueue(`${name}.dlq`);
        await ch.deleteExchange(`${name}.dlx`);
      }
      await connection.close();
    },
  };
}

jobQueueContract("AmqpQueue (RabbitMQ)", await amqpHarness());

async function postgresHarness(): Promise<JobQueueHarness | undefined> {
  const database = await testDatabase("kit_queue");
  if (!database) return undefined;
  const pools: PgDatabase[] = [];
  return {
    async open() {
      const db = new PgDatabase(
        loadConfig(Type.Object(PostgresConfig), { DATABASE_URL: database.url, DATABASE_POOL_MAX: "4" }),
      );
      pools.push(db);
      // a short lease so a crashed consumer's deliveries come back within the test
      return new PgQueue(db, { QUEUE_POLL_MS: 200, QUEUE_LEASE_MS: 1_500 });
    },
    async dropConnections() {
      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      const { rows } = await admin.query(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
      );
      await admin.end();
      if (rows.length === 0) throw new Error("no connection to terminate: the test would prove nothing");
    },
    async crash(q: JobQueue) {
      const queue = q as PgQueue;
      await queue.halt();
      await queue.db.close();
    },
    async cleanup() {
      for (const db of pools) await db.close().catch(() => undefined);
      await database.drop();
    },
  };
}

jobQueueContract("PgQueue (PostgreSQL)", await postgresHarness());
