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

/**
 * The environment a plan is checked as: the strictest of the stack's name and its config's `environment` output. A
 * stack named `prod` is prod whatever its config says, so a prod stack cannot opt into dev's relaxations by config.
 */
export function environmentOf(plan: PlanDocument): "dev" | "prod" {
  return plan.stack === "prod" || plan.outputs.environment === "prod" ? "prod" : "dev";
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

/**
 * Reads a dotted path (`"vpcConfig.endpointPublicAccess"`, `"rules.0.port"`) from inputs. Keys may hold dots
 * themselves, as annotation and label keys do (`"metadata.annotations.ndt.io/needs-kubernetes-api"`): where a segment
 * is not a key, it is joined with the next ones until one is.
 */
export function at(value: PlanValue | undefined, path: string): PlanValue | undefined {
  return atSegments(value, path.split("."));
}

function atSegments(value: PlanValue | undefined, segments: string[]): PlanValue | undefined {
  if (segments.length === 0) return value;
  if (value === null || value === undefined || typeof value !== "object") return undefined;
  for (let length = 1; length <= segments.length; length++) {
    const key = segments.slice(0, length).join(".");
    const child = Array.isArray(value) ? (/^\d+$/.test(key) ? value[Number(key)] : undefined) : value[key];
    if (child === undefined) continue;
    const found = atSegments(child, segments.slice(length));
    if (found !== undefined) return found;
  }
  return undefined;
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
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

export function statementsOf(policy: ReturnType<typeof parsePolicy>): PolicyStatement[] {
  if (!policy?.Statement) return [];
  return Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
}

export function asList(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** IAM's wildcard matching (`*` any run of characters, `?` one), case-sensitive as for resource ARNs. */
export function wildcardMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${source}$`, ignoreCase ? "is" : "s").test(value);
}

/**
 * Input and values keys that hold a credential's value (`password`, `adminPassword`, `authToken`, `privateKeyPem`).
 * Keys of references to a secret (`existingSecret`, `passwordKey`, `secretName`, `secretArn`) are not credentials.
 */
const CREDENTIAL_KEY =
  /(password|passwd|secretstring|secretbinary|clientsecret|sharedsecret|token|privatekey|privatekeypem|apikey|secretaccesskey|kubeconfig)$/i;
const SECRET_REFERENCE = /^existing/i;

export function isCredentialKey(key: string): boolean {
  return CREDENTIAL_KEY.test(key) && !SECRET_REFERENCE.test(key);
}

/** A URL with a userinfo password: `scheme://user:password@`. */
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:([^\s/?#@]+)@/gi;
/** A password that only names where the real one comes from: `$(DB_PASSWORD)` (the kubelet's), `${...}`, "[secret]". */
const PASSWORD_REFERENCE = /^(\$\(\w+\)|\$\{\w+\}|\$\w+|\[secret\])+$/;

/** Whether a value holds a URL that carries a password in its userinfo (`postgres://user:pass@host/db`). */
export function hasPasswordInUrl(value: string): boolean {
  return [...value.matchAll(URL_WITH_PASSWORD)].some((match) => !PASSWORD_REFERENCE.test(match[1] ?? ""));
}
