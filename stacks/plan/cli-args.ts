/**
 * The infrastructure CLIs' arguments (plan, plan:diff, guardrails), read one way: an unknown option or a stray
 * argument is one line and the usage on standard error (exit 2), `--help` the usage on standard output (exit 0), a
 * missing required option named. Never a stack trace for a typo.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The parsed values, or the exit code when the command ends here (usage already written). */
export function readCliArgs<T extends Options>(
  command: string,
  usage: string,
  options: T,
  required: readonly (keyof T & string)[],
): { values: Partial<Record<keyof T, string | boolean>> } | { exitCode: number } {
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (error) {
    process.stderr.write(`${command}: ${(error as Error).message}\nusage: ${usage}\n`);
    return { exitCode: 2 };
  }
  if (values.help) {
    process.stdout.write(`usage: ${usage}\n`);
    return { exitCode: 0 };
  }
  const missing = required.filter((name) => !values[name]);
  if (missing.length > 0) {
    process.stderr.write(`${command}: ${missing.map((name) => `--${name}`).join(" and ")} required\nusage: ${usage}\n`);
    return { exitCode: 2 };
  }
  return { values: values as Partial<Record<keyof T, string | boolean>> };
}
