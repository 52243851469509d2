/**
 * `npm run guardrails -- --stack <dev|prod> [--json]`: plans the stack offline and checks every GUARDRAILS.md line
 * over the plan. Exits 1 when any line fails, naming each offending resource and the reason.
 */
import { readCliArgs } from "../../stacks/plan/cli-args.js";
import { isUserError, planStack } from "../../stacks/plan/plan-stack.js";
import { allGuardrails, evaluate } from "./index.js";

async function main(): Promise<number> {
  const args = readCliArgs(
    "guardrails",
    "npm run guardrails -- --stack <dev|prod> [--json]",
    { stack: { type: "string", short: "s" }, json: { type: "boolean" } },
    ["stack"],
  );
  if ("exitCode" in args) return args.exitCode;
  const values = args.values as { stack: string; json?: boolean };
  const plan = await planStack(values.stack);
  const results = evaluate(plan, allGuardrails);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } else {
    for (const result of results) {
      process.stdout.write(`${result.passed ? "PASS" : "FAIL"}  ${result.id.padEnd(4)} ${result.title}\n`);
      for (const finding of result.findings) process.stdout.write(`        ${finding.resource}: ${finding.reason}\n`);
    }
    const failed = results.filter((result) => !result.passed).length;
    process.stdout.write(`\n${results.length - failed} of ${results.length} guardrails pass for stack ${plan.stack}\n`);
  }
  return results.every((result) => result.passed) ? 0 : 1;
}

const exit = (code: number): void => {
  process.stdout.write("", () => process.exit(code));
};

main().then(exit, (error: unknown) => {
  process.stderr.write(
    isUserError(error)
      ? `guardrails: ${(error as Error).message}\n`
      : `guardrails: unexpected failure:\n${(error as Error)?.stack ?? String(error)}\n`,
  );
  exit(isUserError(error) ? 1 : 70);
});
