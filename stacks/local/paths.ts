import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: apps/ lives there, and the default data directory. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Where `npm start` keeps its data and where `npm run demo` finds it: `NDT_DATA_DIR`, else `.local` in the root. */
export function dataDirOf(env: Readonly<Record<string, string | undefined>>, root = REPO_ROOT): string {
  return resolve(root, env.NDT_DATA_DIR || ".local");
}
