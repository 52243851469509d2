import { awsGuardrails } from "./aws/index.js";
import type { Guardrail } from "./guardrail.js";
import { kubernetesGuardrails } from "./k8s/index.js";

export { evaluate, type Finding, type Guardrail, type GuardrailResult } from "./guardrail.js";

/** Every guardrail the platform checks over a plan: AWS lines, then Kubernetes lines. */
export const allGuardrails: Guardrail[] = [...awsGuardrails, ...kubernetesGuardrails];
