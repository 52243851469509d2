/** For the guardrail tests: what a plan fails, evaluated with every guardrail. */
import type { PlanDocument } from "../../stacks/plan/document.js";
import { type Finding, allGuardrails, evaluate } from "./index.js";

/** The ids of the guardrails `plan` fails, in catalogue order. */
export const failing = (plan: PlanDocument): string[] =>
  evaluate(plan, allGuardrails)
    .filter((result) => !result.passed)
    .map((result) => result.id);

/** One guardrail's findings on `plan` (none when it passes): that guardrail alone is evaluated. */
export const findingsOf = (plan: PlanDocument, id: string): Finding[] =>
  evaluate(
    plan,
    allGuardrails.filter((guardrail) => guardrail.id === id),
  )[0]?.findings ?? [];
