import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

/** The flat `<namespace>:<key>` → string map Pulumi hands a program, read from Pulumi.<stack>.yaml. */
export interface StackFile {
  stack: string;
  path: string;
  config: Record<string, string>;
  /** Keys whose values are `secure:` ciphertext: the plan knows only that they are secret. */
  secretKeys: string[];
}

export class StackFileError extends Error {
  override name = "StackFileError";
}

export const REPOSITORY_ROOT = new URL("../../", import.meta.url).pathname;

export function listStacks(root = REPOSITORY_ROOT): string[] {
  let files: string[];
  try {
    files = readdirSync(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "ENOTDIR" ? "is not a directory" : "cannot be read";
    throw new StackFileError(`the config directory ${root} ${why}`);
  }
  return files
    .map((file) => /^Pulumi\.(.+)\.yaml$/.exec(file)?.[1])
    .filter((stack): stack is string => stack !== undefined)
    .sort();
}

export function stackFilePath(stack: string, root = REPOSITORY_ROOT): string {
  return join(root, `Pulumi.${stack}.yaml`);
}

/** Throws StackFileError, naming the known stacks, unless `stack` is a stack name with a file at `path`. */
export function assertKnownStack(stack: string, root = REPOSITORY_ROOT, path = stackFilePath(stack, root)): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack) || !existsSync(path)) {
    const known = listStacks(root);
    throw new StackFileError(`unknown stack "${stack}": no ${path}. Known stacks: ${known.join(", ") || "none"}`);
  }
}

/** Reads a stack file the way the Pulumi CLI would hand it over: scalars as text, objects as JSON text. */
export function readStackFile(stack: string, root = REPOSITORY_ROOT, path = stackFilePath(stack, root)): StackFile {
  assertKnownStack(stack, root, path);
  let document: unknown;
  try {
    document = parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new StackFileError(`${path} is not valid YAML: ${(error as Error).message}`);
  }
  const config = (document as { config?: unknown } | null)?.config;
  if (config === undefined || config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new StackFileError(`${path} has no "config:" mapping`);
  }
  const flat: Record<string, string> = {};
  const secretKeys: string[] = [];
  const empty: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (value === null) {
      empty.push(key);
      continue;
    }
    const { plain, secret } = withoutCiphertext(path, key, value);
    // a structured value holding a secret anywhere is secret as a whole, as Pulumi hands it over
    if (secret) secretKeys.push(key);
    // structured values as the JSON text Pulumi hands over
    flat[key] = typeof plain === "string" ? plain : JSON.stringify(plain);
  }
  if (empty.length > 0) {
    const keys = empty.join(", ");
    throw new StackFileError(
      `${path}: ${keys} ${empty.length === 1 ? "has" : "have"} no value: give a value or remove the key`,
    );
  }
  return { stack, path, config: flat, secretKeys };
}

/**
 * The value with every `secure:` ciphertext, at the top or nested in structured config, replaced by "[secret]" (the
 * plan cannot decrypt, and a check that fails on a secret then says "[secret]" rather than echoing ciphertext), and
 * whether there was any.
 */
function withoutCiphertext(path: string, key: string, value: unknown): { plain: unknown; secret: boolean } {
  let secret = false;
  const within = new Set<object>();
  const walk = (v: unknown): unknown => {
    if (isSecure(v)) {
      secret = true;
      return "[secret]";
    }
    if (typeof v !== "object" || v === null) return v;
    if (within.has(v)) {
      throw new StackFileError(`${path}: ${key} refers to itself (a YAML alias inside its own anchor)`);
    }
    within.add(v);
    const copy = Array.isArray(v)
      ? v.map(walk)
      : Object.fromEntries(Object.entries(v).map(([field, item]) => [field, walk(item)]));
    within.delete(v);
    return copy;
  };
  const plain = walk(value);
  return { plain, secret };
}

function isSecure(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.keys(value).length === 1 && "secure" in value;
}
