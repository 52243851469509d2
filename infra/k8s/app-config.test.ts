/**
 * The cloud wiring and the apps agree: for every service (and the migrations Job) the prod and dev plans deploy, the
 * container's env gives every variable the app's own config schema (apps/<image>/src/config.ts, `*ConfigSchema`)
 * requires without a default, every variable it sets is one the app (or a library it uses) reads, and every
 * literal value passes that variable's schema. A renamed setting on
 * either side fails here, by name, instead of as a crash-looping pod after `pulumi up`.
 */
import type { TObject, TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { describe, expect, it } from "vitest";
import type { PlanDocument } from "../../stacks/plan/document.js";
import { planOf } from "../../stacks/plan/testing.js";
import { topology } from "../../stacks/topology.js";
import { appConfigSchemaOf } from "../../tools/delivery/app-config-schema.js";
import { APP_NAMESPACE } from "./names.js";

type Json = Record<string, unknown>;
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

/** Every deployed app validates its env: a workload without a schema is an error here, not a skip. */
async function configSchemaOf(app: string): Promise<TObject> {
  const schema = await appConfigSchemaOf(app);
  if (!schema) throw new Error(`${app}: no src/config.ts, so its env cannot be checked`);
  return schema;
}

function containerEnv(plan: PlanDocument, kind: string, name: string): EnvVar[] {
  const found = plan.resources.find((resource) => {
    const metadata = resource.inputs.metadata as Json | undefined;
    return resource.inputs.kind === kind && metadata?.name === name && metadata.namespace === APP_NAMESPACE;
  });
  if (!found) throw new Error(`no ${kind} ${name} in the ${plan.stack} plan`);
  const spec = found.inputs.spec as Json;
  const template = spec.template as Json;
  const containers = (template.spec as Json).containers as { env?: EnvVar[] }[];
  return containers[0]?.env ?? [];
}

/** Read by libraries, not by the app's schema: the AWS SDK, Node and libuv. */
const READ_BY_LIBRARIES = new Set(["AWS_REGION", "NODE_ENV", "UV_THREADPOOL_SIZE"]);

/**
 * Offered by the platform to every service the topology grants a bucket or a call (the IAM grant and the
 * NetworkPolicy come with them); an app reads the ones it needs, e.g. the detector takes the bucket from each job.
 */
const OFFERED = [/^S3_(BUCKET|PREFIX)_[A-Z]+$/, /^[A-Z]+_URL$/];

/** What is wrong between a container's env and the app's schema, one line per variable. */
function mismatches(env: readonly EnvVar[], schema: TObject): string[] {
  const given = new Map(env.map((variable) => [variable.name, variable]));
  const problems: string[] = [];
  for (const name of schema.required ?? []) {
    const property = schema.properties[name] as TSchema;
    if (property.default === undefined && !given.has(name)) problems.push(`${name}: required, not set`);
  }
  for (const variable of env) {
    const property = schema.properties[variable.name] as TSchema | undefined;
    const optional = READ_BY_LIBRARIES.has(variable.name) || OFFERED.some((pattern) => pattern.test(variable.name));
    if (!property && !optional) problems.push(`${variable.name}: set, but the app never reads it`);
    if (!property || variable.value === undefined) continue;
    const converted = Value.Convert(property, variable.value);
    if (!Value.Check(property, converted)) problems.push(`${variable.name}=${variable.value}: rejected by the schema`);
  }
  return problems;
}

const workloads = [
  ...topology.services.map((service) => ({ kind: "Deployment", name: service.name, app: service.image })),
  { kind: "Job", name: "migrations", app: topology.migrations.image },
];

describe.each(["prod", "dev"])("the %s plan's env against each app's config schema", (stack) => {
  it.for(workloads)("$name", async ({ kind, name, app }) => {
    const schema = await configSchemaOf(app);
    const plan = await planOf(stack);
    expect(mismatches(containerEnv(plan, kind, name), schema)).toEqual([]);
  });
});
