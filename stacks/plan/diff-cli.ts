/**
 * `npm run plan:diff -- --stack <dev|prod> --base <git-ref> [--json]`: the plan at the base ref (in a temporary git
 * worktree) against the working tree's, as markdown that fits a pull-request comment. Offline, like `npm run plan`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCliArgs } from "./cli-args.js";
import { diffPlans, renderDiffMarkdown } from "./diff.js";
import type { PlanDocument } from "./document.js";
import { assertKnownStack, REPOSITORY_ROOT, StackFileError } from "./stack-file.js";

class PlanDiffError extends Error {}

function git(args: string[], cwd = REPOSITORY_ROOT): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Runs `stacks/plan/cli.ts` of that checkout in a fresh process, so base and head never share module state. */
function planIn(checkout: string, stack: string, label: string): PlanDocument {
  const cli = join(checkout, "stacks/plan/cli.ts");
  if (!existsSync(cli)) throw new PlanDiffError(`${label} has no stacks/plan/cli.ts: it predates the offline plan`);
  const result = spawnSync(process.execPath, ["--import", "tsx", cli, "--stack", stack, "--json"], {
    cwd: checkout,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new PlanDiffError(`the plan of ${label} failed:\n${(result.stderr || result.stdout).trim()}`);
  }
  return JSON.parse(result.stdout) as PlanDocument;
}

function planAtRef(ref: string, stack: string): PlanDocument {
  let commit: string;
  try {
    commit = git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
  } catch {
    throw new PlanDiffError(`unknown git ref "${ref}"`);
  }
  try {
    git(["cat-file", "-e", `${commit}:Pulumi.${stack}.yaml`]);
  } catch {
    throw new PlanDiffError(
      `base ${ref} has no Pulumi.${stack}.yaml: there is no plan of stack "${stack}" to compare with`,
    );
  }
  const worktree = mkdtempSync(join(tmpdir(), "ndt-plan-base-"));
  git(["worktree", "add", "--detach", "--force", worktree, commit]);
  try {
    // The base plans with this checkout's installed packages: a dependency bump shows up as part of the diff.
    symlinkSync(join(REPOSITORY_ROOT, "node_modules"), join(worktree, "node_modules"), "dir");
    return planIn(worktree, stack, `base ${ref} (${commit.slice(0, 12)})`);
  } finally {
    git(["worktree", "remove", "--force", worktree]);
    rmSync(worktree, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const args = readCliArgs(
    "plan:diff",
    "npm run plan:diff -- --stack <dev|prod> --base <git-ref> [--json]",
    { stack: { type: "string", short: "s" }, base: { type: "string", short: "b" }, json: { type: "boolean" } },
    ["stack", "base"],
  );
  if ("exitCode" in args) return args.exitCode;
  const values = args.values as { stack: string; base: string; json?: boolean };
  // said before any worktree is made: a typo costs nothing
  assertKnownStack(values.stack);
  const base = planAtRef(values.base, values.stack);
  const head = planIn(REPOSITORY_ROOT, values.stack, "the working tree");
  const diff = diffPlans(base, head);
  process.stdout.write(values.json ? `${JSON.stringify(diff, null, 2)}\n` : renderDiffMarkdown(diff, values.base));
  return 0;
}

const exit = (code: number): void => {
  process.stdout.write("", () => process.exit(code));
};

main().then(exit, (error: unknown) => {
  const known = error instanceof PlanDiffError || error instanceof StackFileError;
  process.stderr.write(`plan:diff: ${known ? (error as Error).message : ((error as Error)?.stack ?? String(error))}\n`);
  exit(1);
});
