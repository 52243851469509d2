import type * as pulumi from "@pulumi/pulumi";

/**
 * A resource's Pulumi logical name, so a grant's policy is named after its grantee and keeps that name from one
 * deployment to the next. Pulumi keeps it on the resource (`__name`) without typing it.
 */
export function logicalNameOf(resource: pulumi.Resource): string {
  const name = (resource as unknown as { __name?: unknown }).__name;
  if (typeof name !== "string") throw new Error("cannot read the logical name of the resource being granted to");
  return name;
}
