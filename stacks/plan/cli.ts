/**
 * `npm run plan -- --stack <dev|prod> [--json]`: the real Pulumi program under mocks, offline (CONTRACTS.md §2).
 * With --json, standard output carries the JSON document alone; everything else goes to standard error.
 */
import { resolve } from "node:path";
import { readCliArgs } from "./cli-args.js";
import { isUserError, planStack } from "./plan-stack.js";
import { renderSummary } from "./summary.js";

async function main(): Promise<number> {
  const args = readCliArgs(
    "plan",
    "npm run plan -- --stack <dev|prod> [--json] [--config-dir DIR] [--topology FILE]",
    {
      stack: { type: "string", short: "s" },
      json: { type: "boolean" },
      // Where the Pulumi.<stack>.yaml files live, like Pulumi.yaml's stackConfigDir. Default: the repository root.
      "config-dir": { type: "string" },
      // A topology JSON file to plan instead of stacks/topology.ts (what-ifs and tests of topology validation).
      topology: { type: "string" },
    },
    ["stack"],
  );
  if ("exitCode" in args) return args.exitCode;
  const values = args.values as { stack: string; json?: boolean; "config-dir"?: string; topology?: string };
  const started = Date.now();
  const configDir = values["config-dir"];
  const plan = await planStack(values.stack, {
    ...(configDir ? { root: resolve(configDir) } : {}),
    ...(values.topology ? { topologyFile: resolve(values.topology) } : {}),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
  } else {
    process.stdout.write(renderSummary(plan));
  }
  process.stderr.write(
    `plan: ${plan.resources.length} resources for stack ${plan.stack} in ${Date.now() - started} ms\n`,
  );
  return 0;
}

// Pulumi's runtime keeps handles open after a mock run; exit once standard output has drained.
const exit = (code: number): void => {
  process.stdout.write("", () => process.exit(code));
};

main().then(
  (code) => exit(code),
  (error: unknown) => {
    if (isUserError(error)) {
      process.stderr.write(`plan: ${(error as Error).message}\n`);
    } else {
      process.stderr.write(
        `plan: unexpected failure (a bug, please report it):\n${(error as Error)?.stack ?? String(error)}\n`,
      );
    }
    exit(1);
  },
);
