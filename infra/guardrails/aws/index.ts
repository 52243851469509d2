import type { Guardrail } from "../guardrail.js";
import { clusterGuardrails } from "./cluster.js";
import { dataGuardrails } from "./data.js";
import { storageGuardrails } from "./storage.js";

/** Lines A1–A16 of GUARDRAILS.md, in order. Each file owns the lines of one part of the platform. */
export const awsGuardrails: Guardrail[] = [...clusterGuardrails, ...dataGuardrails, ...storageGuardrails].sort(
  (a, b) => lineNumber(a) - lineNumber(b),
);

function lineNumber(guardrail: Guardrail): number {
  return Number(guardrail.id.slice(1));
}
