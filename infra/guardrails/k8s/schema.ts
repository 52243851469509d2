import * as certManager from "@kubernetes-models/cert-manager";
import * as externalSecrets from "@kubernetes-models/external-secrets";
import * as keda from "@kubernetes-models/keda";
import * as prometheusOperator from "@kubernetes-models/prometheus-operator";
import * as builtIn from "kubernetes-models";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import ts from "typescript";
import type { PlanResource } from "../../../stacks/plan/document.js";
import { findingsFor, type Guardrail, inputAt, ofType, stackKey } from "../guardrail.js";
import { kubernetesObjects } from "./objects.js";

/**
 * K12: every Kubernetes object of the plan validated against the API schema of the cluster's version, with the
 * OpenAPI-generated validators of `kubernetes-models` (built-in kinds; 4.5.x is generated from Kubernetes 1.33) and
 * the @kubernetes-models CRD packages (ServiceMonitor, ScaledObject, ExternalSecret, ClusterIssuer...).
 *
 * The validators check types, required fields, enums, patterns and formats, but not unknown fields (the generated
 * validators allow additional properties). The API server drops an unknown field silently, so a misspelled
 * `readOnlyRootFileSystem: true` would leave the root filesystem writable: unknown fields are found by walking each
 * object against the same packages' generated declarations (`I<Kind>` in `<group>/<version>/<Kind>.d.ts`), whose
 * property lists are closed, with the TypeScript compiler. Maps (labels, data) and free-form fields are not walked into.
 * The external-secrets package (0.5.x, the last for Node 20) knows v1beta1 only; `external-secrets.io/v1` objects are
 * checked against it (v1 promoted the v1beta1 schema unchanged).
 */

/** The Kubernetes version the installed `kubernetes-models` schemas were generated from. */
export const SCHEMA_KUBERNETES_VERSION = "1.33";

/** Built-in group versions Kubernetes 1.33 serves; kubernetes-models also carries removed ones (extensions/v1beta1). */
const SERVED_BUILT_IN = new Set([
  "v1",
  "admissionregistration.k8s.io/v1",
  "apiextensions.k8s.io/v1",
  "apiregistration.k8s.io/v1",
  "apps/v1",
  "authentication.k8s.io/v1",
  "authorization.k8s.io/v1",
  "autoscaling/v1",
  "autoscaling/v2",
  "batch/v1",
  "certificates.k8s.io/v1",
  "coordination.k8s.io/v1",
  "discovery.k8s.io/v1",
  "events.k8s.io/v1",
  "flowcontrol.apiserver.k8s.io/v1",
  "networking.k8s.io/v1",
  "node.k8s.io/v1",
  "policy/v1",
  "rbac.authorization.k8s.io/v1",
  "scheduling.k8s.io/v1",
  "storage.k8s.io/v1",
]);

/** Served versions whose schema the installed packages know under another version name. */
const SCHEMA_ALIASES: Record<string, string> = {
  "external-secrets.io/v1": "external-secrets.io/v1beta1",
};

interface Validatable {
  validate(): void;
}
type ModelClass = (new (data: unknown) => Validatable) & { apiVersion: string; kind: string };

const models = new Map<string, ModelClass>();
const builtInGroups = new Set<string>();
function collect(module: unknown, depth: number, isBuiltIn: boolean): void {
  if (!module || depth > 4) return;
  for (const value of Object.values(module as Record<string, unknown>)) {
    if (typeof value === "function") {
      const model = value as Partial<ModelClass>;
      if (typeof model.apiVersion === "string" && typeof model.kind === "string") {
        models.set(`${model.apiVersion}|${model.kind}`, value as ModelClass);
        if (isBuiltIn) builtInGroups.add(groupOf(model.apiVersion));
      }
    } else if (typeof value === "object") {
      collect(value, depth + 1, isBuiltIn);
    }
  }
}
collect(builtIn, 0, true);
for (const crds of [prometheusOperator, keda, externalSecrets, certManager]) collect(crds, 0, false);

function groupOf(apiVersion: string): string {
  return apiVersion.includes("/") ? (apiVersion.split("/")[0] ?? "") : "";
}

/** Values the plan hides ("[secret]") or cannot know yet ("[unknown]") are left out: their type is not checkable. */
function withoutPlaceholders(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((item) => !isPlaceholder(item)).map(withoutPlaceholders);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, item]) => !isPlaceholder(item))
      .map(([key, item]) => [key, withoutPlaceholders(item)]),
  );
}
const isPlaceholder = (value: unknown): boolean => value === "[secret]" || value === "[unknown]";

/** Why an object is not valid for the cluster's API, or undefined when it is. */
export function schemaProblem(object: Record<string, unknown>): string | undefined {
  const apiVersion = String(object.apiVersion);
  const kind = String(object.kind);
  if (builtInGroups.has(groupOf(apiVersion)) && !SERVED_BUILT_IN.has(apiVersion)) {
    return `${apiVersion} is not served by Kubernetes ${SCHEMA_KUBERNETES_VERSION}`;
  }
  const model = models.get(`${SCHEMA_ALIASES[apiVersion] ?? apiVersion}|${kind}`);
  if (!model) return `no schema for ${apiVersion} ${kind}`;
  try {
    // The model's constructor sets apiVersion/kind to its own (the alias's); the rest is validated as given.
    new model({ ...(withoutPlaceholders(object) as Record<string, unknown>), apiVersion: model.apiVersion }).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^data\//, "").replace(/\s+/g, " ");
  }
}

/** Where the model packages' declarations live: built-in kinds first, then the CRD packages. */
const require = createRequire(import.meta.url);
const DECLARATION_ROOTS = [
  "kubernetes-models",
  "@kubernetes-models/prometheus-operator",
  "@kubernetes-models/keda",
  "@kubernetes-models/external-secrets",
  "@kubernetes-models/cert-manager",
].map((name) => dirname(require.resolve(name)));

const declarationFiles = new Map<string, string | undefined>();

/** `<root>/<group>/<version>/<Kind>.d.ts` (core kinds: `<root>/v1/<Kind>.d.ts`) of the first package that has it. */
function declarationFileOf(apiVersion: string, kind: string): string | undefined {
  const key = `${apiVersion}|${kind}`;
  if (!declarationFiles.has(key)) {
    const version = SCHEMA_ALIASES[apiVersion] ?? apiVersion;
    const roots = DECLARATION_ROOTS.map((root) => join(root, version, `${kind}.d.ts`));
    declarationFiles.set(
      key,
      roots.find((file) => existsSync(file)),
    );
  }
  return declarationFiles.get(key);
}

/** One compiler program over the declarations needed so far, rebuilt when an object of a new kind needs more. */
let declarations: { files: Set<string>; program: ts.Program; checker: ts.TypeChecker } | undefined;

function declaredTypeOf(file: string, kind: string): { type: ts.Type; checker: ts.TypeChecker } | undefined {
  if (!declarations?.files.has(file)) {
    const files = new Set([...(declarations?.files ?? []), file]);
    // Declarations only: no emit, no type-checking of the packages, and the ES5 lib for Array. The previous program
    // is passed in, so the files it parsed are reused rather than parsed again.
    const program = ts.createProgram(
      [...files],
      { noEmit: true, skipLibCheck: true, types: [], lib: ["lib.es5.d.ts"] },
      undefined,
      declarations?.program,
    );
    declarations = { files, program, checker: program.getTypeChecker() };
  }
  const { program, checker } = declarations;
  const declaration = program
    .getSourceFile(file)
    ?.statements.find(
      (statement): statement is ts.InterfaceDeclaration =>
        ts.isInterfaceDeclaration(statement) && statement.name.text === `I${kind}`,
    );
  return declaration ? { type: checker.getTypeAtLocation(declaration.name), checker } : undefined;
}

/** Paths of the fields in `value` that its declared type does not have. */
function* unknownFields(checker: ts.TypeChecker, declared: ts.Type, value: unknown, path: string): Generator<string> {
  if (value === null || typeof value !== "object") return;
  const type = checker.getNonNullableType(declared);
  if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
  if (Array.isArray(value)) {
    const element = checker.getIndexInfoOfType(type, ts.IndexKind.Number)?.type;
    if (element)
      for (const [index, item] of value.entries()) yield* unknownFields(checker, element, item, `${path}[${index}]`);
    return;
  }
  const shapes = (type.isUnion() ? type.types : [type]).filter((member) => member.flags & ts.TypeFlags.Object);
  if (shapes.length === 0) return; // a type mismatch: the validator's finding
  const map = shapes.map((shape) => checker.getIndexInfoOfType(shape, ts.IndexKind.String)).find(Boolean);
  const child = (key: string) => (path ? `${path}.${key}` : key);
  if (map) {
    for (const [key, item] of Object.entries(value)) yield* unknownFields(checker, map.type, item, child(key));
    return;
  }
  const fields = new Map<string, ts.Symbol>();
  for (const shape of shapes) {
    for (const field of checker.getPropertiesOfType(shape)) if (!fields.has(field.name)) fields.set(field.name, field);
  }
  if (fields.size === 0) return; // free-form (`{}`): anything goes
  for (const [key, item] of Object.entries(value)) {
    const field = fields.get(key);
    const declaration = field?.valueDeclaration ?? field?.declarations?.[0];
    if (!field || !declaration) yield child(key);
    else yield* unknownFields(checker, checker.getTypeOfSymbolAtLocation(field, declaration), item, child(key));
  }
}

/** Fields of a Kubernetes object that its kind's schema does not have (the API server would drop them). */
function unknownFieldsOf(object: Record<string, unknown>): string[] {
  const file = declarationFileOf(String(object.apiVersion), String(object.kind));
  const declared = file ? declaredTypeOf(file, String(object.kind)) : undefined;
  return declared ? [...unknownFields(declared.checker, declared.type, object, "")] : [];
}

export const k12Schema: Guardrail = {
  id: "K12",
  title: "Every Kubernetes object validates against the Kubernetes API schema of the cluster's version",
  check({ plan }) {
    const { findings, fail } = findingsFor("K12");
    for (const cluster of ofType(plan, "eks:index:Cluster")) {
      const version = inputAt(cluster, "version");
      if (version !== SCHEMA_KUBERNETES_VERSION) {
        fail(
          cluster,
          `Kubernetes ${String(version)} has no schema here (kubernetes-models is ${SCHEMA_KUBERNETES_VERSION})`,
        );
      }
    }
    const objects: PlanResource[] = kubernetesObjects(plan);
    if (objects.length === 0 && ofType(plan, "eks:index:Cluster").length > 0) {
      fail(stackKey(plan), "no Kubernetes objects in the plan");
    }
    for (const object of objects) {
      const problem = schemaProblem(object.inputs);
      if (problem) fail(object, problem);
      const unknown = unknownFieldsOf(object.inputs);
      if (unknown.length > 0)
        fail(object, `fields the schema does not have (the API drops them): ${unknown.join(", ")}`);
    }
    return findings;
  },
};
