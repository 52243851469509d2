/**
 * An S3-compatible server for tests: s3rver on a free port in a temporary directory, reached through the real AWS
 * SDK (never a hand-made fake). Its settings feed `S3ObjectStore` directly or a service's env.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import S3rver from "s3rver";
import type { S3Settings } from "../objects/s3.js";

export interface TestS3 {
  endpoint: string;
  /** Typed settings for `new S3ObjectStore(settings, bucket)`. */
  settings: S3Settings;
  /** The same as service env variables (`S3_ENDPOINT`, credentials, path style). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** The settings and env of an s3rver at `endpoint` (its fixed credentials, path-style addressing). */
function s3rverAt(endpoint: string): Pick<TestS3, "endpoint" | "settings" | "env"> {
  const credentials = { S3_REGION: "us-east-1", S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER" };
  return {
    endpoint,
    settings: {
      S3_ENDPOINT: endpoint,
      ...credentials,
      S3_FORCE_PATH_STYLE: true,
      S3_PART_BYTES: 5 * 1024 * 1024,
      S3_QUEUE_SIZE: 2,
    },
    env: { S3_ENDPOINT: endpoint, ...credentials, S3_FORCE_PATH_STYLE: "true" },
  };
}

/** s3rver with `buckets` created, in this process. */
export async function testS3(buckets: readonly string[]): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), "ndt-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const { port } = (await server.run()) as AddressInfo;
  return {
    ...s3rverAt(`http://127.0.0.1:${port}`),
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

const S3RVER_SCRIPT = `
import S3rver from "s3rver";
const [directory, ...buckets] = process.argv.slice(1);
const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })) });
const { port } = await server.run();
process.stdout.write(port + "\\n");
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
`;

export interface TestS3Process extends TestS3 {
  /** The server's own process (its CPU, its memory: apart from the measured one's). */
  process: ChildProcess;
}

/**
 * s3rver with `buckets` created, in a child process: for measurements of this process (memory, CPU, event loop)
 * that must not include the object store's work, as in the cloud.
 */
export async function testS3Process(buckets: readonly string[]): Promise<TestS3Process> {
  const directory = await mkdtemp(join(tmpdir(), "ndt-s3rver-"));
  // resolves "s3rver" from kit's own package
  const child = spawn(process.execPath, ["--input-type=module", "-e", S3RVER_SCRIPT, directory, ...buckets], {
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  return {
    ...s3rverAt(`http://127.0.0.1:${port}`),
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
