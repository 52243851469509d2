import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diffPlans, isEmpty, MAX_COMMENT_CHARS, renderDiffMarkdown } from "./diff.js";
import type { PlanDocument } from "./document.js";
import { REPOSITORY_ROOT } from "./stack-file.js";
import { planOf, resourceOf } from "./testing.js";

describe("diffPlans", () => {
  it("finds nothing between a plan and itself", async () => {
    const plan = await planOf("prod");
    expect(isEmpty(diffPlans(plan, await planOf("prod")))).toBe(true);
  });

  it("names the changed input path and flags a change that replaces a node group", async () => {
    const base = await planOf("prod");
    const head = await planOf("prod");
    resourceOf(head, "eks:index:ManagedNodeGroup", "cluster-gpu").inputs.instanceTypes = ["g6.4xlarge"];
    (
      resourceOf(head, "eks:index:ManagedNodeGroup", "cluster-system").inputs.scalingConfig as Record<string, number>
    ).maxSize = 12;
    const diff = diffPlans(base, head);
    expect(
      diff.changed.map((change) => [change.name, change.changes.map((item) => item.path), change.replacedBy]),
    ).toEqual([
      ["cluster-gpu", ["instanceTypes.0", "instanceTypes.1"], ["instanceTypes.0", "instanceTypes.1"]],
      ["cluster-system", ["scalingConfig.maxSize"], []],
    ]);
    const markdown = renderDiffMarkdown(diff, "main");
    expect(markdown).toContain("**0 to add, 2 to change (1 replacement), 0 to remove.**");
    expect(markdown).toContain("| ⚠️ replace | `cluster-gpu` |");
    expect(markdown).toContain("+ scalingConfig.maxSize: 12");
  });

  it("lists added and removed resources", async () => {
    const base = await planOf("dev");
    const head: PlanDocument = {
      ...base,
      resources: base.resources.filter(
        (resource) => !(resource.type === "aws:kms/key:Key" && resource.name === "keys-logs"),
      ),
    };
    head.resources.push({ type: "aws:sqs/queue:Queue", name: "extra", parent: null, inputs: {} });
    const diff = diffPlans(base, head);
    expect(diff.removed.map((resource) => resource.name)).toEqual(["keys-logs"]);
    expect(diff.added.map((resource) => resource.name)).toEqual(["extra"]);
  });

  it("keeps the markdown under the pull-request comment limit, folding the details", async () => {
    const base = await planOf("prod");
    const head = await planOf("prod");
    // Thousands of changed paths: every resource gets a long list that differs element by element.
    for (const resource of base.resources) resource.inputs.list = Array.from({ length: 200 }, (_, i) => `before-${i}`);
    for (const resource of head.resources) resource.inputs.list = Array.from({ length: 200 }, (_, i) => `after-${i}`);
    const markdown = renderDiffMarkdown(diffPlans(base, head), "main");
    expect(markdown.length).toBeLessThanOrEqual(MAX_COMMENT_CHARS);
    expect(markdown).toContain("truncated to fit a pull-request comment");
    expect(markdown).toContain("</details>");
  });
});

describe("npm run plan:diff", () => {
  // A worktree of HEAD stands for a pull request's checkout; its stack file gets the fixture change.
  let worktree: string;
  beforeAll(() => {
    worktree = mkdtempSync(join(tmpdir(), "ndt-plan-head-"));
    execFileSync("git", ["worktree", "add", "--detach", "--force", worktree, "HEAD"], {
      cwd: REPOSITORY_ROOT,
      stdio: "ignore",
    });
    symlinkSync(join(REPOSITORY_ROOT, "node_modules"), join(worktree, "node_modules"), "dir");
  });
  afterAll(() => {
    execFileSync("git", ["worktree", "remove", "--force", worktree], { cwd: REPOSITORY_ROOT, stdio: "ignore" });
    rmSync(worktree, { recursive: true, force: true });
  });

  const planDiff = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", join(worktree, "stacks/plan/diff-cli.ts"), ...args], {
      cwd: worktree,
      encoding: "utf8",
    });

  it("reports no changes against the same ref", () => {
    const result = planDiff("--stack", "prod", "--base", "HEAD");
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain("**No changes.**");
  });

  it("shows exactly a changed GPU instance type, flagged as a replacement", () => {
    const file = join(worktree, "Pulumi.prod.yaml");
    const original = readFileSync(file, "utf8");
    writeFileSync(
      file,
      original.replace("instanceTypes: [g6.2xlarge, g5.2xlarge]", "instanceTypes: [g6.4xlarge, g5.2xlarge]"),
    );
    try {
      const result = planDiff("--stack", "prod", "--base", "HEAD");
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toContain("**0 to add, 1 to change (1 replacement), 0 to remove.**");
      expect(result.stdout).toContain(
        "| ⚠️ replace | `cluster-gpu` | `eks:index:ManagedNodeGroup` | instanceTypes.0 — **replaced by** instanceTypes.0 |",
      );
      expect(result.stdout).toContain('- instanceTypes.0: "g6.2xlarge"\n+ instanceTypes.0: "g6.4xlarge"');
    } finally {
      writeFileSync(file, original);
    }
  });

  it("names an unknown stack before making any worktree", () => {
    const worktrees = () => execFileSync("git", ["worktree", "list"], { cwd: REPOSITORY_ROOT, encoding: "utf8" });
    const before = worktrees();
    const result = planDiff("--stack", "staging", "--base", "HEAD");
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `plan:diff: unknown stack "staging": no ${join(worktree, "Pulumi.staging.yaml")}. Known stacks: dev, prod\n`,
    );
    expect(worktrees()).toBe(before);
  });

  it("says clearly when the base has no file for the stack", () => {
    const file = join(worktree, "Pulumi.qa.yaml");
    writeFileSync(file, readFileSync(join(worktree, "Pulumi.dev.yaml")));
    try {
      const result = planDiff("--stack", "qa", "--base", "HEAD");
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(
        'base HEAD has no Pulumi.qa.yaml: there is no plan of stack "qa" to compare with',
      );
    } finally {
      rmSync(file);
    }
  });

  it("says clearly when the base ref does not exist", () => {
    const result = planDiff("--stack", "prod", "--base", "no-such-ref");
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('unknown git ref "no-such-ref"');
  });
});
