/**
 * The detection job as apps/files publishes it (apps/files/src/relay.ts `DetectionJob`), validated with TypeBox.
 * Extra fields are tolerated (a newer publisher may add some); missing or mistyped ones are not.
 */
import { type Static, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";

const Uuid = Type.String({ pattern: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$" });

export const DetectionJobSchema = Type.Object({
  jobId: Uuid,
  imageId: Uuid,
  inspectionId: Uuid,
  organizationId: Uuid,
  bucket: Type.String({ minLength: 1 }),
  key: Type.String({ minLength: 1 }),
  contentType: Type.Union([Type.Literal("image/png"), Type.Literal("image/jpeg")]),
});
export type DetectionJob = Static<typeof DetectionJobSchema>;

export class InvalidJobError extends Error {
  override name = "InvalidJobError";
}

/** Parses a message body; throws InvalidJobError naming what is wrong. */
export function parseJob(body: Buffer): DetectionJob {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new InvalidJobError(`body is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const first = Value.Errors(DetectionJobSchema, value).First();
  if (first) throw new InvalidJobError(`invalid job: ${first.path || "(body)"} ${first.message}`);
  return value as DetectionJob;
}
