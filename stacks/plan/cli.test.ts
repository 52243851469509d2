import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPOSITORY_ROOT } from "./stack-file.js";

const CLI = join(REPOSITORY_ROOT, "stacks/plan/cli.ts");
// No credentials and no network: whatever the machine has, the plan must not need them.
const offlineEnv = {
  ...process.env,
  AWS_ACCESS_KEY_ID: "",
  AWS_SECRET_ACCESS_KEY: "",
  AWS_PROFILE: "",
  HTTPS_PROXY: "http://127.0.0.1:9",
};

function plan(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return run(CLI, ...args);
}

function run(script: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: REPOSITORY_ROOT,
    env: offlineEnv,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The contract's own command, `npm run plan -- …`: npm's banner must not reach stdout either. */
function npmRunPlan(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("npm", ["run", "plan", "--", ...args], {
    cwd: REPOSITORY_ROOT,
    env: offlineEnv,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const scratch = mkdtempSync(join(tmpdir(), "ndt-plan-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of Pulumi.prod.yaml as stack `broken`, edited. */
function brokenStack(edit: (config: Record<string, unknown>) => void): string {
  const document = parse(readFileSync(join(REPOSITORY_ROOT, "Pulumi.prod.yaml"), "utf8")) as {
    config: Record<string, unknown>;
  };
  edit(document.config);
  writeFileSync(join(scratch, "Pulumi.broken.yaml"), stringify(document));
  return scratch;
}

const noStackTrace = (text: string): void => {
  expect(text).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
};

describe("npm run plan", () => {
  it("prints the prod plan as JSON alone on stdout, byte-identical across runs", () => {
    const first = plan("--stack", "prod", "--json");
    const second = npmRunPlan("--stack", "prod", "--json");
    expect(first.status, first.stderr).toBe(0);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const document = JSON.parse(first.stdout) as {
      project: string;
      stack: string;
      resources: { parent: string | null }[];
    };
    expect(document.project).toBe("ndt-platform");
    expect(document.stack).toBe("prod");
    expect(document.resources.length).toBeGreaterThan(20);
    expect(document.resources.some((resource) => resource.parent === "ndt:aws:Cluster::cluster")).toBe(true);
    expect(first.stdout).not.toContain("mock-password");
  });

  it("prints a readable summary with counts by type and the key settings", () => {
    const result = plan("--stack", "dev");
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain("Resources by type:");
    expect(result.stdout).toMatch(/eks:index:ManagedNodeGroup\s+2/);
    expect(result.stdout).toContain("g6.xlarge, g5.xlarge AL2023_x86_64_NVIDIA SPOT, 0..2 nodes");
  });

  it("rejects an unknown stack with the known ones and no stack trace", () => {
    const result = plan("--stack", "staging");
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('unknown stack "staging"');
    expect(result.stderr).toContain("Known stacks: dev, prod");
    noStackTrace(result.stderr);
  });

  it("rejects a stack file with a wrong type, a missing key and an unknown key, naming each", () => {
    const dir = brokenStack((config) => {
      (config["ndt-platform:database"] as Record<string, unknown>).instances = "three";
      delete (config["ndt-platform:cache"] as Record<string, unknown>).engine;
      (config["ndt-platform:network"] as Record<string, unknown>).natGateway = "single";
    });
    const result = plan("--stack", "broken", "--config-dir", dir);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("ndt-platform:database.instances: expected integer");
    expect(result.stderr).toContain("ndt-platform:cache.engine: missing required key");
    expect(result.stderr).toContain("ndt-platform:network.natGateway: unknown key");
    noStackTrace(result.stderr);
  });

  it("names keys left without a value, and shows a nested secret as [secret], never its ciphertext", () => {
    const empty = brokenStack((config) => {
      config["ndt-platform:network"] = null;
      config["ndt-platform:cache"] = null;
    });
    const noValue = plan("--stack", "broken", "--config-dir", empty);
    expect(noValue.status).toBe(1);
    expect(noValue.stderr).toContain(
      "Pulumi.broken.yaml: ndt-platform:network, ndt-platform:cache have no value: give a value or remove the key",
    );
    noStackTrace(noValue.stderr);

    const nested = brokenStack((config) => {
      (config["ndt-platform:cluster"] as Record<string, unknown>).kubernetesVersion = { secure: "AAABAKxCIPHERTEXT" };
    });
    const secret = plan("--stack", "broken", "--config-dir", nested);
    expect(secret.status).toBe(1);
    expect(secret.stderr).toContain('ndt-platform:cluster.kubernetesVersion: must be one of "1.31"');
    expect(secret.stderr).toContain('(got "[secret]")');
    expect(secret.stderr).not.toContain("CIPHERTEXT");
    noStackTrace(secret.stderr);
  });

  it("refuses a missing --stack with usage", () => {
    const result = plan();
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("usage: npm run plan -- --stack <dev|prod>");
  });
});

describe("the infrastructure CLIs' bad input", () => {
  const clis = {
    plan: CLI,
    "plan:diff": join(REPOSITORY_ROOT, "stacks/plan/diff-cli.ts"),
    guardrails: join(REPOSITORY_ROOT, "infra/guardrails/cli.ts"),
  };

  it("answers an unknown option or a stray argument with one line and the usage (exit 2), --help with exit 0", () => {
    for (const [name, script] of Object.entries(clis)) {
      for (const args of [
        ["--stack", "dev", "--jsno"],
        ["--stack", "dev", "extra"],
      ]) {
        const result = run(script, ...args);
        expect([name, args, result.status], result.stderr).toEqual([name, args, 2]);
        expect(result.stderr).toContain(`usage: npm run ${name} -- --stack <dev|prod>`);
        noStackTrace(result.stderr);
      }
      const help = run(script, "--help");
      expect([name, help.status, help.stdout]).toEqual([name, 0, expect.stringContaining(`usage: npm run ${name}`)]);
    }
  });

  it("names a --config-dir that does not exist or is a file, and a YAML alias inside its own anchor", () => {
    const file = join(scratch, "not-a-dir");
    writeFileSync(file, "");
    for (const [dir, why] of [
      [join(scratch, "missing"), "does not exist"],
      [file, "is not a directory"],
    ]) {
      const result = plan("--stack", "dev", "--config-dir", dir!);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`the config directory ${dir} ${why}`);
      noStackTrace(result.stderr);
    }
    writeFileSync(join(scratch, "Pulumi.loop.yaml"), "config: &a\n  x: *a\n");
    const loop = plan("--stack", "loop", "--config-dir", scratch);
    expect(loop.status).toBe(1);
    expect(loop.stderr).toContain("x refers to itself");
    noStackTrace(loop.stderr);
  });
});
