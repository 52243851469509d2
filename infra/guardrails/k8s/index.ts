import type { Guardrail } from "../guardrail.js";
import { networkGuardrails } from "./network.js";
import { k12Schema } from "./schema.js";
import { workloadGuardrails } from "./workloads.js";

/** Lines K1–K12 of GUARDRAILS.md, in order. */
export const kubernetesGuardrails: Guardrail[] = [...networkGuardrails, ...workloadGuardrails, k12Schema].sort(
  (a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)),
);
