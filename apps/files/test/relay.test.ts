/**
 * The outbox relay delivers every accepted upload (P8): a relay that crashes between the commit and the publish,
 * a broker that is down when the upload is accepted, or a broker connection cut while uploads go on, still ends
 * with every job on the queue.
 */
import { randomUUID } from "node:crypto";
import {
  tcpProxy,
  type TestDatabase,
  testDatabase,
  type TestIssuer,
  testIssuer,
  testRedis,
  type TestRedis,
  testS3,
  type TestS3,
} from "@ndt/kit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { BUCKET, bearer, fakePng, filesConfig, type TestAmqp, testAmqp, waitFor } from "./helpers.js";

const db = await testDatabase("files_relay");
const kv = await testRedis("files_relay");
const mq = await testAmqp("files_relay");

describe.skipIf(!db || !kv || !mq)("outbox relay", () => {
  let s3: TestS3;
  let issuer: TestIssuer;
  const env = () => ({ db: db as TestDatabase, kv: kv as TestRedis, mq: mq as TestAmqp, s3, issuer });
  const org = randomUUID();
  let token: string;

  beforeAll(async () => {
    s3 = await testS3([BUCKET]);
    issuer = await testIssuer();
    token = await issuer.token({ org, role: "inspector" });
  });

  afterAll(async () => {
    await s3?.stop();
    await issuer?.stop();
    await mq?.cleanup();
    await kv?.cleanup();
    await db?.drop();
  });

  async function uploadWith(app: Awaited<ReturnType<typeof buildApp>>) {
    const created = await app.inject({
      method: "POST",
      url: "/api/v1/inspections",
      headers: bearer(token),
      payload: { title: "relay" },
    });
    const res = await app.inject({
      method: "POST",
      url: `/api/v1/inspections/${created.json().id}/images`,
      headers: { ...bearer(token), "content-type": "image/png" },
      payload: fakePng(),
    });
    expect(res.statusCode).toBe(202);
    const { rows } = await app.deps.db.query<{ job_id: string }>(
      "SELECT job_id FROM outbox WHERE payload->>'imageId' = $1",
      [res.json().id],
    );
    return { imageId: res.json().id as string, jobId: rows[0]!.job_id };
  }

  const unsent = async (app: Awaited<ReturnType<typeof buildApp>>, jobId: string) =>
    (await app.deps.db.query("SELECT 1 FROM outbox WHERE job_id = $1 AND sent_at IS NULL", [jobId])).rowCount === 1;

  it("delivers a job whose relay crashed between the commit and the publish", async () => {
    let crashes = 0;
    const crashing = await buildApp({
      config: filesConfig(env()),
      beforePublish: () => {
        crashes++;
        throw new Error("relay crashed");
      },
    });
    const { imageId, jobId } = await uploadWith(crashing);
    await waitFor(async () => crashes > 0);
    expect(await mq!.next(500)).toBeUndefined();
    expect(await unsent(crashing, jobId)).toBe(true);
    await crashing.close();

    // the restarted process re-reads the unsent row
    const restarted = await buildApp({ config: filesConfig(env()) });
    try {
      const msg = await mq!.next();
      expect(msg?.properties.messageId).toBe(jobId);
      expect(JSON.parse(msg!.content.toString())).toMatchObject({ jobId, imageId });
      await waitFor(async () => !(await unsent(restarted, jobId)));
    } finally {
      await restarted.close();
    }
  });

  it("accepts uploads while the broker is unreachable and publishes them once it is back", async () => {
    const offline = await buildApp({ config: filesConfig(env(), { AMQP_URL: "amqp://guest:guest@127.0.0.1:1" }) });
    const { jobId } = await uploadWith(offline);
    await new Promise((r) => setTimeout(r, 300));
    expect(await unsent(offline, jobId)).toBe(true);
    await offline.close();

    const online = await buildApp({ config: filesConfig(env()) });
    try {
      expect((await mq!.next())?.properties.messageId).toBe(jobId);
      await waitFor(async () => !(await unsent(online, jobId)));
    } finally {
      await online.close();
    }
  });

  it("loses nothing when the broker connection drops while uploads continue", async () => {
    const target = new URL(mq!.url);
    const proxy = await tcpProxy(target.hostname, Number(target.port || 5672));
    const viaProxy = new URL(mq!.url);
    viaProxy.hostname = proxy.host;
    viaProxy.port = String(proxy.port);
    const app = await buildApp({ config: filesConfig(env(), { AMQP_URL: viaProxy.toString() }) });
    try {
      const jobs: string[] = [];
      for (let i = 0; i < 30; i++) {
        jobs.push((await uploadWith(app)).jobId);
        // cut every broker connection twice during the uploads (publishes may be in flight)
        if (i === 10 || i === 20) proxy.dropAll();
      }
      const seen = new Set<string>();
      await waitFor(async () => {
        for (let msg = await mq!.next(200); msg; msg = await mq!.next(200)) seen.add(String(msg.properties.messageId));
        return jobs.every((j) => seen.has(j));
      }, 30_000);
      await waitFor(async () => {
        const { rows } = await app.deps.db.query<{ n: string }>(
          "SELECT count(*) AS n FROM outbox WHERE job_id = ANY($1::uuid[]) AND sent_at IS NULL",
          [jobs],
        );
        return rows[0]!.n === "0";
      });
      // the relay did reconnect through the proxy after the cuts
      expect(proxy.accepted).toBeGreaterThanOrEqual(3);
    } finally {
      await app.close();
      await proxy.close();
    }
  });
});
