import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { TObject } from "@sinclair/typebox";
import { REPO_ROOT } from "./build.js";

/**
 * The env schema an app validates at start: the one `*ConfigSchema` export of apps/<app>/src/config.ts, or
 * undefined when the app has no config.ts. The delivery and plan tests read it to check what the images get.
 */
export async function appConfigSchemaOf(app: string, root = REPO_ROOT): Promise<TObject | undefined> {
  const file = path.join(root, "apps", app, "src", "config.ts");
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const schemas = Object.entries(mod).filter(
    ([name, value]) => name.endsWith("ConfigSchema") && typeof value === "object" && value !== null,
  );
  if (schemas.length !== 1) throw new Error(`${app}: expected one *ConfigSchema export in src/config.ts`);
  return schemas[0]![1] as TObject;
}
