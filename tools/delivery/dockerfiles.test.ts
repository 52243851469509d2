/**
 * The service images, checked statically (no Docker engine where these tests run; CI's `images` job builds them):
 * pinned bases, production-only installs through `npm ci`, a numeric non-root user, node as PID 1 in exec form,
 * one pattern for every service, and the GPU variant on CUDA with onnxruntime-node's CUDA provider.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../../apps/detector/src/node-flags.js";
import { REPO_ROOT } from "./build.js";

const APPS = ["gateway", "auth", "files", "reports", "detector", "migrations"] as const;
const SERVICE = "docker/service.Dockerfile";
const GPU = "docker/detector-gpu.Dockerfile";
const FILES = [SERVICE, GPU];
const read = (f: string) => readFileSync(path.join(REPO_ROOT, f), "utf8");

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\r?\n/g, " ")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [op = "", ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

/** Every FROM image with ARG defaults substituted; stage names (FROM <stage>) resolved away. */
function baseImages(text: string): string[] {
  const ins = instructions(text);
  const args = new Map<string, string>();
  const stages = new Set<string>();
  const images: string[] = [];
  for (const { op, args: a } of ins) {
    if (op === "ARG") {
      const [k, v] = a.split("=");
      if (k && v !== undefined && !args.has(k)) args.set(k, v);
    }
    if (op === "FROM") {
      const parts = a.split(/\s+/).filter((p) => !p.startsWith("--"));
      const image = (parts[0] ?? "").replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? `\${${k}}`);
      if (!stages.has(image)) images.push(image);
      if (parts[1]?.toUpperCase() === "AS" && parts[2]) stages.add(parts[2]);
    }
  }
  return images;
}

describe.each(FILES)("%s", (file) => {
  const text = read(file);
  const ins = instructions(text);

  it("exists", () => expect(existsSync(path.join(REPO_ROOT, file))).toBe(true));

  it("uses only pinned base images (a version tag or digest, never :latest or untagged)", () => {
    const images = baseImages(text);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) {
      expect(image, image).not.toMatch(/\$\{/);
      expect(image, image).not.toMatch(/:latest$/);
      expect(image, image).toMatch(/(:[\w.-]*\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})$/);
    }
  });

  it("is multi-stage and installs with npm ci only: production dependencies of the one workspace", () => {
    expect(ins.filter((i) => i.op === "FROM").length).toBeGreaterThanOrEqual(3);
    const runs = ins.filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs.join("\n")).not.toMatch(/npm (install|i|add)\b/);
    expect(runs.join("\n")).not.toMatch(/\byarn\b|\bpnpm\b/);
    expect(
      runs.some((r) => /npm ci --omit=dev --workspace "apps\/\$\{APP\}" --include-workspace-root=false/.test(r)),
    ).toBe(true);
  });

  it("runs as a numeric non-root user in the final stage", () => {
    const users = ins.filter((i) => i.op === "USER").map((i) => i.args);
    const last = users.at(-1) ?? "";
    expect(last).toMatch(/^\d+(:\d+)?$/);
    expect(Number(last.split(":")[0])).toBeGreaterThan(0);
    // USER comes after the last FROM: it applies to the runtime stage
    const lastFrom = ins.map((i) => i.op).lastIndexOf("FROM");
    expect(ins.map((i) => i.op).lastIndexOf("USER")).toBeGreaterThan(lastFrom);
  });

  it("starts node directly in exec form (PID 1 gets SIGTERM) on the built bundle, with nothing to compile", () => {
    const entry = ins.filter((i) => i.op === "ENTRYPOINT" || i.op === "CMD").at(-1);
    const argv = JSON.parse(entry?.args ?? "null") as string[];
    expect(argv[0]).toBe("node");
    expect(argv.at(-1)).toBe("dist/server.js");
    expect(argv.join(" ")).not.toMatch(/tsx|ts-node|--import|\.ts\b/);
  });

  it("writes nothing at run time outside /tmp (HOME=/tmp, no VOLUME, no npm at start)", () => {
    expect(text).toMatch(/HOME=\/tmp/);
    expect(ins.some((i) => i.op === "VOLUME")).toBe(false);
  });

  it("builds with the shared production build (tools/delivery/build.ts)", () => {
    expect(text).toContain('node_modules/.bin/tsx tools/delivery/build.ts "${APP}"');
  });
});

describe("one Dockerfile for every service", () => {
  it("takes the app as a build argument with no default, and refuses a build without one", () => {
    const text = read(SERVICE);
    expect(text).not.toMatch(/ARG APP=/);
    expect(text.match(/^ARG APP$/gm)?.length).toBe(3);
    expect(text).toContain('test -n "${APP}"');
  });

  it("every service present has the layout it assumes: @ndt/<app> with src/server.ts", () => {
    const present = APPS.filter((app) => existsSync(path.join(REPO_ROOT, "apps", app, "src")));
    expect(present.length).toBeGreaterThan(0);
    for (const app of present) {
      const manifest = JSON.parse(read(`apps/${app}/package.json`)) as { name: string };
      expect(manifest.name).toBe(`@ndt/${app}`);
      expect(existsSync(path.join(REPO_ROOT, "apps", app, "src/server.ts")), app).toBe(true);
    }
  });

  it("the migrations image carries every service's SQL where the Job looks for it (apps/<service>/migrations)", () => {
    const text = read(SERVICE);
    expect(text).toMatch(/if \[ "\$\{APP\}" = migrations \]; then[\s\S]*for dir in apps\/\*\/migrations/);
    expect(text).toContain("COPY --from=build /out/sql ./apps/");
  });

  it("the project's .npmrc (onnxruntime-node-install=skip) reaches the install: the context keeps it", () => {
    const ignore = read(".dockerignore");
    expect(ignore).not.toMatch(/^\.npmrc$/m);
    expect(read(".npmrc")).toMatch(/^onnxruntime-node-install=skip$/m);
    for (const f of FILES) expect(read(f)).toContain("! -name .npmrc");
  });

  it(".dockerignore keeps node_modules, git and local data out of the context", () => {
    const ignore = read(".dockerignore").split(/\r?\n/);
    for (const p of [".git", "**/node_modules", "**/dist", ".local"]) expect(ignore).toContain(p);
    expect(ignore).not.toContain("tools");
  });
});

describe(GPU, () => {
  const text = read(GPU);

  it("runs on a pinned NVIDIA CUDA runtime base with cuDNN", () => {
    const runtime = baseImages(text).at(-1) ?? "";
    expect(runtime).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
  });

  it("installs onnxruntime-node's CUDA 12 provider at build time and checks the libraries are there", () => {
    expect(text).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node script\/install\.js/);
    expect(text).toContain("libonnxruntime_providers_cuda.so");
    // the mechanism the Dockerfile relies on is the installed package's own
    const utils = path.join(REPO_ROOT, "node_modules/onnxruntime-node/script/install-utils.js");
    if (existsSync(utils)) expect(readFileSync(utils, "utf8")).toContain("process.env.ONNXRUNTIME_NODE_INSTALL");
  });

  it("copies the node binary from the same pinned Node image as the CPU variant", () => {
    const cpuNode = baseImages(read(SERVICE))[0];
    expect(baseImages(text)[0]).toBe(cpuNode);
    expect(text).toContain("COPY --from=node /usr/local/bin/node /usr/local/bin/node");
  });

  it("starts node with the worker's V8 flags (apps/detector/src/node-flags.ts), as the benchmark measured it", () => {
    const entry = instructions(text)
      .filter((i) => i.op === "ENTRYPOINT")
      .at(-1);
    const argv = JSON.parse(entry?.args ?? "null") as string[];
    expect(argv.slice(1, -1)).toEqual(expect.arrayContaining([...NODE_FLAGS]));
  });
});
