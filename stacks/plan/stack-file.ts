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

/** Reads a stack file the way the Pulumi CLI would hand it over: scalars as text, objects as JSON text. */
export function readStackFile(stack: string, root = REPOSITORY_ROOT, path = stackFilePath(stack, root)): StackFile {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack) || !existsSync(path)) {
    const known = listStacks(root);
    throw new StackFileError(`unknown stack "${stack}": no ${path}. Known stacks: ${known.join(", ") || "none"}`);
  }
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
  for (const [key, value] of Object.entries(config)) {
    if (isSecure(value)) {
      flat[key] = "[secret]";
      secretKeys.push(key);
    } else {
      flat[key] = typeof value === "string" ? value : configText(path, key, value);
    }
  }
  return { stack, path, config: flat, secretKeys };
}

/** A structured value as the JSON text Pulumi hands over; a YAML alias that contains itself has none. */
function configText(path: string, key: string, value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    throw new StackFileError(`${path}: ${key} refers to itself (a YAML alias inside its own anchor)`);
  }
}

function isSecure(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.keys(value).length === 1 && "secure" in value;
}
