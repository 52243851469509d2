import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "../config.js";
import type { PlanDocument, PlanResource, PlanValue } from "./document.js";
import { createMocks } from "./mocks.js";

/**
 * Runs the real Pulumi program under Pulumi's mocks, offline, and records every registered resource with its inputs
 * exactly as the engine would receive them (CONTRACTS.md §2).
 */

// Sentinels of Pulumi's wire format (@pulumi/pulumi/runtime/rpc): secrets, resource references, unknown values.
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e";
const OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4";
const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export interface PlanOptions {
  stack: string;
  /** The flat config map (`ndt-platform:cluster` → JSON text), as Pulumi would hand it over. */
  config: Record<string, string>;
  secretKeys?: string[];
  /** The program: declares resources and returns the stack outputs. */
  program: () => Promise<Record<string, unknown>> | Record<string, unknown>;
}

interface ProtoStruct {
  toJavaScript(): unknown;
}
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getObject(): ProtoStruct | undefined;
}
interface RegisterOutputsRequest {
  getUrn(): string;
  getOutputs(): ProtoStruct | undefined;
}
interface MonitorWithRegister {
  registerResource(request: RegisterRequest, callback: unknown): unknown;
  registerResourceOutputs(request: RegisterOutputsRequest, callback: unknown): unknown;
}

export async function runPlan(options: PlanOptions): Promise<PlanDocument> {
  const region = regionOf(options.config);
  pulumi.runtime.setAllConfig(options.config, options.secretKeys);
  await pulumi.runtime.setMocks(createMocks(region), PROJECT, options.stack, false);

  const recorded: PlanResource[] = [];
  const monitor = pulumi.runtime.getMonitor() as unknown as MonitorWithRegister;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (request, callback) => {
    const type = request.getType();
    if (type !== "pulumi:pulumi:Stack") {
      const inputs = redact(request.getObject()?.toJavaScript() ?? {});
      recorded.push({
        type,
        name: request.getName(),
        parent: parentKey(request.getParent()),
        inputs: (inputs && typeof inputs === "object" && !Array.isArray(inputs)
          ? inputs
          : {}) as PlanResource["inputs"],
      });
    }
    return register(request, callback);
  };
  // Stack outputs as the engine receives them: still marked where secret, unlike the value runInPulumiStack resolves.
  let stackOutputs: unknown = {};
  const registerOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (request, callback) => {
    if (request.getUrn().includes("::pulumi:pulumi:Stack::")) stackOutputs = request.getOutputs()?.toJavaScript() ?? {};
    return registerOutputs(request, callback);
  };

  let failure: unknown;
  await pulumi.runtime
    .runInPulumiStack(async () => {
      try {
        return await options.program();
      } catch (error) {
        failure = error;
        return {};
      }
    })
    .catch((error: unknown) => {
      failure ??= error;
      return {};
    });
  await pulumi.runtime.disconnect();
  if (failure !== undefined) throw failure;

  return {
    project: PROJECT,
    stack: options.stack,
    resources: sortResources(recorded),
    outputs: redact(stackOutputs) as PlanDocument["outputs"],
  };
}

function regionOf(config: Record<string, string>): string {
  return config["aws:region"] ?? "us-east-1";
}

/** `urn:pulumi:stack::project::parentType$type::name` → `"type::name"`; the stack itself counts as no parent. */
function parentKey(urn: string): string | null {
  if (!urn) return null;
  const parts = urn.split("::");
  const qualifiedType = parts[2] ?? "";
  const type = qualifiedType.split("$").at(-1) ?? qualifiedType;
  if (type === "pulumi:pulumi:Stack") return null;
  return `${type}::${parts.slice(3).join("::")}`;
}

/** Secrets become "[secret]", unknowns "[unknown]", resource references their `"type::name"`, file assets `{fileAsset}`. */
function redact(value: unknown): PlanValue {
  if (value === UNKNOWN) return "[unknown]";
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    const signature = record[SIG_KEY];
    if (signature === SECRET_SIG) return "[secret]";
    if (signature === RESOURCE_SIG) return parentKey(String(record.urn ?? "")) ?? "[resource]";
    // a file asset is its path (relative to the project): its bytes are not part of the plan
    if (signature === ASSET_SIG) return typeof record.path === "string" ? { fileAsset: record.path } : "[asset]";
    if (signature === OUTPUT_SIG) {
      if (record.secret === true) return "[secret]";
      return "value" in record ? redact(record.value) : "[unknown]";
    }
    const out: Record<string, PlanValue> = {};
    for (const key of Object.keys(record).sort()) out[key] = redact(record[key]);
    return out;
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "string") return value;
  return String(value);
}

/** Parents before children, siblings by type then name: stable whatever order registrations finished in. */
function sortResources(resources: PlanResource[]): PlanResource[] {
  const byKey = new Map(resources.map((resource) => [`${resource.type}::${resource.name}`, resource]));
  const pathOf = (resource: PlanResource): string => {
    const own = `${resource.type}::${resource.name}`;
    const parent = resource.parent ? byKey.get(resource.parent) : undefined;
    return parent && parent !== resource ? `${pathOf(parent)}\u0000${own}` : own;
  };
  return [...resources]
    .map((resource) => ({ resource, path: pathOf(resource) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map(({ resource }) => resource);
}
