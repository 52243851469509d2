/**
 * The production build the images run (tools/delivery/build.ts), on a throw-away workspace: the service and its
 * @ndt/* workspace source become one bundle that plain node runs; third-party packages stay external; a package
 * imported but not declared by the workspaces the image installs fails the build.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildableApps, buildApp, UndeclaredDependencyError } from "./build.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function write(root: string, file: string, content: string | object): void {
  const p = path.join(root, file);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content));
}

/** apps/svc (the service) depends on apps/lib (a workspace package exporting TypeScript source, like @ndt/kit). */
function workspace(opts: { libImports?: string; libDeps?: Record<string, string> } = {}): string {
  const root = mkdtempSync(path.join(tmpdir(), "ndt-build-"));
  roots.push(root);
  write(root, "package.json", { name: "fixture", private: true, type: "module", workspaces: ["apps/*"] });
  write(root, "apps/lib/package.json", {
    name: "@ndt/lib",
    type: "module",
    exports: { ".": "./src/index.ts" },
    dependencies: opts.libDeps ?? {},
  });
  write(
    root,
    "apps/lib/src/index.ts",
    `${opts.libImports ?? ""}\nexport const greeting: string = ["hello", "from", "lib"].join(" ");\n`,
  );
  write(root, "apps/svc/package.json", { name: "@ndt/svc", type: "module", dependencies: { "@ndt/lib": "^0.1.0" } });
  write(root, "apps/svc/migrations/001.sql", "select 1;\n");
  write(
    root,
    "apps/svc/src/server.ts",
    [
      'import { existsSync } from "node:fs";',
      'import { fileURLToPath } from "node:url";',
      'import { greeting } from "@ndt/lib";',
      "interface Out { greeting: string; migrations: boolean }",
      'const out: Out = { greeting, migrations: existsSync(fileURLToPath(new URL("../migrations/001.sql", import.meta.url))) };',
      "console.log(JSON.stringify(out));",
    ].join("\n"),
  );
  write(root, "apps/svc/src/infer/onnx.worker.ts", "const n: number = 1;\nconsole.log(n);\n");
  mkdirSync(path.join(root, "node_modules/@ndt"), { recursive: true });
  symlinkSync("../../apps/lib", path.join(root, "node_modules/@ndt/lib"), "dir");
  return root;
}

describe("tools/delivery/build.ts", () => {
  it("bundles the service and its workspace source into dist/server.js that plain node runs", async () => {
    const root = workspace();
    const result = await buildApp("svc", root);
    expect(result.outfile).toBe(path.join(root, "apps/svc/dist/server.js"));
    const bundle = readFileSync(result.outfile, "utf8");
    expect(bundle).not.toContain("@ndt/lib");
    // no TypeScript loader: node alone, from the app folder, exactly as the image's ENTRYPOINT does
    const stdout = execFileSync(process.execPath, ["dist/server.js"], { cwd: path.join(root, "apps/svc") });
    expect(JSON.parse(stdout.toString())).toEqual({ greeting: "hello from lib", migrations: true });
  });

  it("bundles *.worker.ts entry points to the same relative path under dist/", async () => {
    const root = workspace();
    const result = await buildApp("svc", root);
    expect(result.outputs).toContain(path.join(root, "apps/svc/dist/infer/onnx.worker.js"));
  });

  it("bundles plain *.mjs modules (loaded by URL at run time) under the same name", async () => {
    const root = workspace();
    write(root, "apps/svc/src/argon2-worker.mjs", 'import { greeting } from "@ndt/lib";\nconsole.log(greeting);\n');
    const result = await buildApp("svc", root);
    expect(result.outputs).toContain(path.join(root, "apps/svc/dist/argon2-worker.mjs"));
    const stdout = execFileSync(process.execPath, ["dist/argon2-worker.mjs"], { cwd: path.join(root, "apps/svc") });
    expect(stdout.toString().trim()).toBe("hello from lib");
  });

  it("lists the apps with a src/server.ts as the ones to build", () => {
    const root = workspace();
    expect(buildableApps(root)).toEqual(["svc"]);
  });

  it("keeps declared third-party packages external, loaded from node_modules at run time", async () => {
    const root = workspace({
      libImports: 'import pg from "pg";\nimport { Type } from "@sinclair/typebox/value";\nexport const x = [pg, Type];',
      libDeps: { pg: "^8", "@sinclair/typebox": "^0.34" },
    });
    const result = await buildApp("svc", root);
    expect(result.external).toEqual(["@sinclair/typebox", "pg"]);
    const bundle = readFileSync(result.outfile, "utf8");
    expect(bundle).toMatch(/from "pg"/);
    expect(bundle).toMatch(/from "@sinclair\/typebox\/value"/);
  });

  it("fails on a package the workspace closure does not declare (it would be missing from the image)", async () => {
    const root = workspace({ libImports: 'import pg from "pg";\nexport const x = pg;', libDeps: {} });
    const err = await buildApp("svc", root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UndeclaredDependencyError);
    expect((err as Error).message).toContain("pg (imported by apps/lib/src/index.ts)");
  });

  it("leaves the previous dist/ whole when a build fails, and replaces it when one succeeds", async () => {
    const root = workspace();
    const first = await buildApp("svc", root);
    const before = readFileSync(first.outfile, "utf8");
    const appDir = path.join(root, "apps/svc");
    // an undeclared package, then a syntax error: neither build may touch the last good one
    write(root, "apps/svc/src/server.ts", 'import pg from "pg";\nconsole.log(pg);\n');
    await expect(buildApp("svc", root)).rejects.toBeInstanceOf(UndeclaredDependencyError);
    write(root, "apps/svc/src/server.ts", "const = ;\n");
    await expect(buildApp("svc", root)).rejects.toThrow();
    expect(readFileSync(first.outfile, "utf8")).toBe(before);
    expect(readdirSync(appDir).sort()).toEqual(["dist", "migrations", "package.json", "src"]);
    write(root, "apps/svc/src/server.ts", 'console.log("second");\n');
    const second = await buildApp("svc", root);
    expect(second.outputs).toEqual([
      path.join(appDir, "dist/infer/onnx.worker.js"),
      path.join(appDir, "dist/infer/onnx.worker.js.map"),
      path.join(appDir, "dist/server.js"),
      path.join(appDir, "dist/server.js.map"),
    ]);
    expect(execFileSync(process.execPath, ["dist/server.js"], { cwd: appDir }).toString()).toBe("second\n");
  });

  it("answers --help on stdout with exit 0, and an unknown option with exit 2", () => {
    const cli = path.join(import.meta.dirname, "build.ts");
    const run = (arg: string) => spawnSync(process.execPath, ["--import", "tsx", cli, arg], { encoding: "utf8" });
    const help = run("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run build/);
    const unknown = run("--fast");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^unknown option --fast\nusage: npm run build/);
  });

  it("fails clearly when the app has no src/server.ts", async () => {
    const root = workspace();
    await expect(buildApp("nope", root)).rejects.toThrow(/no entry point at apps\/nope\/src\/server.ts/);
  });
});
