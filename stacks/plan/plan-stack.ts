import { readFileSync } from "node:fs";
import { parseStackConfig, StackConfigError } from "../config.js";
import { TopologyError } from "../topology.js";
import type { PlanDocument } from "./document.js";
import { runPlan } from "./run.js";
import { REPOSITORY_ROOT, readStackFile, StackFileError } from "./stack-file.js";

/** Errors that are the user's input, reported as one clear message without a stack trace. */
const userErrors: (new (...args: never[]) => Error)[] = [StackConfigError, StackFileError, TopologyError];

export function registerUserError(type: new (...args: never[]) => Error): void {
  userErrors.push(type);
}

export function isUserError(error: unknown): boolean {
  return userErrors.some((type) => error instanceof type);
}

export interface PlanStackOptions {
  /** Where the Pulumi.<stack>.yaml files live. @default the repository root */
  root?: string;
  /** Read this file instead of Pulumi.<stack>.yaml (tests use edited copies). */
  stackFile?: string;
  /** Adjust the flat config after it is read (tests break one key at a time). */
  editConfig?: (config: Record<string, string>) => void;
  /** Plan this topology (a JSON file, as stacks/topology.ts's shape) instead of the platform's (tests, what-ifs). */
  topologyFile?: string;
}

/** Reads and validates the stack's config, then runs the platform program under mocks. */
export async function planStack(stack: string, options: PlanStackOptions = {}): Promise<PlanDocument> {
  const file = readStackFile(stack, options.root ?? REPOSITORY_ROOT, options.stackFile);
  options.editConfig?.(file.config);
  // Validate before anything is declared, so a bad file fails with its message alone.
  const config = parseStackConfig(file.config, file.path);
  const topology = options.topologyFile === undefined ? undefined : readTopologyFile(options.topologyFile);
  const { definePlatform } = await import("../platform.js");
  return runPlan({
    stack,
    config: file.config,
    secretKeys: file.secretKeys,
    program: () => (topology === undefined ? definePlatform(config) : definePlatform(config, topology)),
  });
}

function readTopologyFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new TopologyError([{ service: "topology", reason: `cannot read ${path}: ${(error as Error).message}` }]);
  }
}
