/** The plan document of CONTRACTS.md §2: what `npm run plan -- --json` prints and what the guardrails read. */

export type PlanValue = null | boolean | number | string | PlanValue[] | { [key: string]: PlanValue };

export interface PlanResource {
  /** Pulumi type token, e.g. `aws:rds/cluster:Cluster`. */
  type: string;
  /** Logical name as registered. */
  name: string;
  /** `"<type>::<name>"` of the parent, or null for the stack's root. */
  parent: string | null;
  /** Resolved inputs as registered; secrets are `"[secret]"`, values only known after deployment are `"[unknown]"`. */
  inputs: { [key: string]: PlanValue };
}

export interface PlanDocument {
  project: string;
  stack: string;
  resources: PlanResource[];
  outputs: { [key: string]: PlanValue };
}

/** `"<type>::<name>"`: how a resource is named in the plan's `parent` field and in guardrail findings. */
export function resourceKey(resource: Pick<PlanResource, "type" | "name">): string {
  return `${resource.type}::${resource.name}`;
}
