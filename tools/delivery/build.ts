/**
 * Production build of one service, the step every image runs:
 *
 *   npx tsx tools/delivery/build.ts <app>     apps/<app>/src/server.ts → apps/<app>/dist/server.js (+ .map)
 *   npm run build [-- <app>…]                 the same; no app = every app with a src/server.ts (buildableApps)
 *
 * Worker-thread entry points follow a naming rule: every `*.worker.ts` under src/ is bundled too, to the same relative
 * path under dist/ (`src/infer/onnx.worker.ts` → `dist/infer/onnx.worker.js`), and every plain `*.mjs` module under src/
 * to the same name (`src/argon2-worker.mjs` → `dist/argon2-worker.mjs`, loaded by URL at run time).
 *
 * The service and the workspace packages it imports (`@ndt/*`, which export TypeScript source) are bundled into one
 * ES module by esbuild, so the container starts plain `node` with nothing to compile. Every other package stays
 * external and is loaded from the production `node_modules` that `npm ci --omit=dev --workspace apps/<app>`
 * installs — native addons (onnxruntime-node, sharp, argon2) and packages that read their own files at run time
 * (swagger-ui) keep working unchanged. `dist/` sits beside `src/`, so paths relative to `import.meta.url`
 * (e.g. auth's `../migrations`) resolve the same in the build as in the source.
 *
 * The build fails when a bundled file imports a package that no package.json in the app's workspace closure
 * declares: in the repository it would resolve from the root's hoisted dependencies, in the image it would be
 * missing (`--include-workspace-root=false`).
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type BuildOptions, type Plugin } from "esbuild";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

export interface BuildResult {
  app: string;
  outfile: string;
  /** Every file written, absolute. */
  outputs: string[];
  /** Packages left external (loaded from node_modules at run time), sorted. */
  external: string[];
}

export class UndeclaredDependencyError extends Error {
  constructor(
    readonly app: string,
    /** Package → the files that import it. */
    readonly missing: ReadonlyMap<string, readonly string[]>,
  ) {
    super(
      `${app}: imported but not declared in the package.json of any workspace the image installs:\n${[...missing]
        .map(([pkg, importers]) => `  - ${pkg} (imported by ${[...new Set(importers)].sort().join(", ")})`)
        .join("\n")}`,
    );
    this.name = "UndeclaredDependencyError";
  }
}

const BUILTINS = new Set(builtinModules);

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
export function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as Manifest;
}

/** Workspace package name → its folder, for every apps/* with a package.json. */
function workspaces(root: string): Map<string, string> {
  const map = new Map<string, string>();
  const appsDir = path.join(root, "apps");
  for (const entry of readdirSync(appsDir, { withFileTypes: true })) {
    const dir = path.join(appsDir, entry.name);
    if (entry.isDirectory() && existsSync(path.join(dir, "package.json"))) map.set(readManifest(dir).name, dir);
  }
  return map;
}

/** Every third-party package declared by the app or by a workspace package it depends on, transitively. */
export function declaredDependencies(root: string, appDir: string): Set<string> {
  const ws = workspaces(root);
  const declared = new Set<string>();
  const seen = new Set<string>();
  const visit = (dir: string): void => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const m = readManifest(dir);
    for (const dep of Object.keys({ ...m.dependencies, ...m.optionalDependencies, ...m.peerDependencies })) {
      const wsDir = ws.get(dep);
      if (wsDir) visit(wsDir);
      else declared.add(dep);
    }
  };
  visit(appDir);
  return declared;
}

/** Every app under apps/ with a `src/server.ts` (the services the images run), sorted. */
export function buildableApps(root = REPO_ROOT): string[] {
  const appsDir = path.join(root, "apps");
  return readdirSync(appsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(appsDir, entry.name, "src", "server.ts")))
    .map((entry) => entry.name)
    .sort();
}

export async function buildApp(app: string, root = REPO_ROOT): Promise<BuildResult> {
  const appDir = path.join(root, "apps", app);
  const entry = path.join(appDir, "src", "server.ts");
  if (!existsSync(entry)) throw new Error(`${app}: no entry point at ${path.relative(root, entry)}`);
  const outdir = path.join(appDir, "dist");
  // built beside dist/ and swapped in only when the build succeeds: a failed build leaves the previous one whole.
  // A sibling folder keeps the source maps' relative paths valid after the rename.
  const staging = path.join(appDir, `.dist-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });

  const declared = declaredDependencies(root, appDir);
  const external = new Set<string>();
  const missing = new Map<string, string[]>();

  const externals: Plugin = {
    name: "externals",
    setup(b) {
      // bare specifiers only: relative and absolute paths are the app's own files
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.kind === "entry-point") return undefined;
        if (args.path.startsWith("node:") || BUILTINS.has(args.path)) return { path: args.path, external: true };
        const pkg = packageName(args.path);
        if (pkg.startsWith("@ndt/")) return undefined; // workspace source: bundled
        external.add(pkg);
        if (!declared.has(pkg)) missing.set(pkg, [...(missing.get(pkg) ?? []), path.relative(root, args.importer)]);
        return { path: args.path, external: true };
      });
    },
  };

  const srcDir = path.join(appDir, "src");
  const sources = readdirSync(srcDir, { recursive: true, encoding: "utf8" }).sort();
  const workers = sources.filter((f) => f.endsWith(".worker.ts")).map((f) => path.join(srcDir, f));
  // Plain-JS modules the source loads by URL (auth's `new URL("./argon2-worker.mjs", import.meta.url)`): bundled
  // under the same name, so the URL resolves from dist/ exactly as from src/.
  const modules = sources.filter((f) => f.endsWith(".mjs")).map((f) => path.join(srcDir, f));
  const options: BuildOptions & { metafile: true } = {
    outdir: staging,
    outbase: srcDir,
    absWorkingDir: root,
    metafile: true,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    sourcemap: true,
    logLevel: "warning",
    plugins: [externals],
  };
  let outputs: string[];
  try {
    const results = [await build({ ...options, entryPoints: [entry, ...workers] })];
    if (modules.length > 0)
      results.push(await build({ ...options, entryPoints: modules, outExtension: { ".js": ".mjs" } }));
    if (missing.size > 0) throw new UndeclaredDependencyError(app, missing);
    outputs = results.flatMap((result) => Object.keys(result.metafile.outputs));
    rmSync(outdir, { recursive: true, force: true });
    renameSync(staging, outdir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return {
    app,
    outfile: path.join(outdir, "server.js"),
    outputs: outputs.map((f) => path.join(outdir, path.relative(staging, path.resolve(root, f)))).sort(),
    external: [...external].sort(),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const usage = "usage: npm run build [-- <app>…]   (apps/<app>/src/server.ts → dist/server.js; none = every app)";
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  const unknown = args.filter((arg) => arg.startsWith("-"));
  if (unknown.length > 0) {
    console.error(`unknown option ${unknown.join(", ")}\n${usage}`);
    process.exit(2);
  }
  const apps = args.length > 0 ? args : buildableApps();
  try {
    for (const app of apps) {
      const r = await buildApp(app);
      console.error(`${app}: ${path.relative(REPO_ROOT, r.outfile)} (external: ${r.external.join(", ") || "none"})`);
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
