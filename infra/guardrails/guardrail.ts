import type { PlanDocument, PlanResource, PlanValue } from "../../stacks/plan/document.js";
import { resourceKey } from "../../stacks/plan/document.js";

/**
 * A guardrail is one line of GUARDRAILS.md as a pure function over the plan document (CONTRACTS.md §2). It returns a
 * finding per offending resource, naming the resource and the reason; no findings means the line holds.
 */
export interface Guardrail {
  /** The line's id in GUARDRAILS.md, e.g. "A7". */
  id: string;
  title: string;
  check(context: GuardrailContext): Finding[];
}

export interface GuardrailContext {
  plan: PlanDocument;
  /** Lines marked "prod" in GUARDRAILS.md are relaxed in dev only where the line says so. */
  environment: "dev" | "prod";
}

export interface Finding {
  guardrail: string;
  /** `"<type>::<name>"` of the offending resource, or the stack when something is missing altogether. */
  resource: string;
  reason: string;
}

export interface GuardrailResult {
  id: string;
  title: string;
  passed: boolean;
  findings: Finding[];
}

export function environmentOf(plan: PlanDocument): "dev" | "prod" {
  return plan.outputs.environment === "dev"
    ? "dev"
    : plan.outputs.environment === "prod"
      ? "prod"
      : plan.stack === "prod"
        ? "prod"
        : "dev";
}

export function evaluate(plan: PlanDocument, guardrails: readonly Guardrail[]): GuardrailResult[] {
  const context: GuardrailContext = { plan, environment: environmentOf(plan) };
  return guardrails.map((guardrail) => {
    const findings = guardrail.check(context);
    return { id: guardrail.id, title: guardrail.title, passed: findings.length === 0, findings };
  });
}

/** Builds findings for one guardrail: `fail(resource, reason)`, collected in order. */
export function findingsFor(id: string): {
  findings: Finding[];
  fail(resource: PlanResource | string, reason: string): void;
} {
  const findings: Finding[] = [];
  return {
    findings,
    fail(resource, reason) {
      findings.push({
        guardrail: id,
        resource: typeof resource === "string" ? resource : resourceKey(resource),
        reason,
      });
    },
  };
}

/** The stack itself, for findings about something that is missing. */
export function stackKey(plan: PlanDocument): string {
  return `pulumi:pulumi:Stack::${plan.project}-${plan.stack}`;
}

export function ofType(plan: PlanDocument, type: string): PlanResource[] {
  return plan.resources.filter((resource) => resource.type === type);
}

/** Direct children of a resource, by its `"type::name"` key. */
export function childrenOf(plan: PlanDocument, parent: PlanResource): PlanResource[] {
  const key = resourceKey(parent);
  return plan.resources.filter((resource) => resource.parent === key);
}

/** Reads a dotted path (`"vpcConfig.endpointPublicAccess"`, `"rules.0.port"`) from inputs. */
export function at(value: PlanValue | undefined, path: string): PlanValue | undefined {
  let current: PlanValue | undefined = value;
  for (const segment of path.split(".")) {
    if (current === null || current === undefined || typeof current !== "object") return undefined;
    current = Array.isArray(current) ? current[Number(segment)] : current[segment];
  }
  return current;
}

export function inputAt(resource: PlanResource, path: string): PlanValue | undefined {
  return at(resource.inputs, path);
}

/** Arrays of plan values, with a missing value read as empty. */
export function asArray(value: PlanValue | undefined): PlanValue[] {
  return Array.isArray(value) ? value : [];
}

/** IAM and bucket policies are JSON text in inputs; "[secret]" or unknown text reads as no policy. */
export function parsePolicy(
  value: PlanValue | undefined,
): { Statement?: PolicyStatement[] | PolicyStatement } | undefined {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as never;
  if (typeof value !== "string") return undefined;
  try {
    return JSON.parse(value) as { Statement?: PolicyStatement[] | PolicyStatement };
  } catch {
    return undefined;
  }
}

export interface PolicyStatement {
  Sid?: string;
  Effect?: "Allow" | "Deny";
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

export function statementsOf(policy: ReturnType<typeof parsePolicy>): PolicyStatement[] {
  if (!policy?.Statement) return [];
  return Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
}

export function asList(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}
