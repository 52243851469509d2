/** The job body as apps/files publishes it, validated; anything else is rejected with a reason. */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { InvalidJobError, parseJob } from "../src/job.js";

const job = {
  jobId: randomUUID(),
  imageId: randomUUID(),
  inspectionId: randomUUID(),
  organizationId: randomUUID(),
  bucket: "uploads",
  key: "a/b/c",
  contentType: "image/png",
};
const body = (v: unknown) => Buffer.from(JSON.stringify(v));

describe("parseJob", () => {
  it("accepts the files service's DetectionJob (and tolerates extra fields)", () => {
    expect(parseJob(body(job))).toEqual(job);
    expect(parseJob(body({ ...job, traceId: "x" }))).toMatchObject(job);
  });
  it("rejects a body that is not JSON, a missing field, a bad id and an unknown content type, naming the problem", () => {
    expect(() => parseJob(Buffer.from("{nope"))).toThrow(InvalidJobError);
    expect(() => parseJob(Buffer.from("{nope"))).toThrow(/not JSON/);
    const { key: _key, ...noKey } = job;
    expect(() => parseJob(body(noKey))).toThrow(/key/);
    expect(() => parseJob(body({ ...job, imageId: "1; DROP TABLE" }))).toThrow(/imageId/);
    expect(() => parseJob(body({ ...job, contentType: "image/gif" }))).toThrow(/contentType/);
    expect(() => parseJob(body([job]))).toThrow(InvalidJobError);
  });
});
