/**
 * Test helpers over plans. A plan is computed once per stack per test process (loading @pulumi/aws is slow), then
 * each test works on its own deep copy, so breaking a setting in one test never leaks into another.
 */
import type { PlanDocument, PlanResource } from "./document.js";
import { type PlanStackOptions, planStack } from "./plan-stack.js";

const plans = new Map<string, Promise<PlanDocument>>();
let queue: Promise<unknown> = Promise.resolve();

/** The plan of a checked-in stack (dev, prod), cached; returns a fresh copy each call. */
export async function planOf(stack: string): Promise<PlanDocument> {
  let plan = plans.get(stack);
  if (!plan) {
    plan = planSerially(stack);
    plans.set(stack, plan);
  }
  return structuredClone(await plan);
}

/** A plan with edited config; Pulumi's runtime is global, so plans in one process run one at a time. */
export function planSerially(stack: string, options: PlanStackOptions = {}): Promise<PlanDocument> {
  const next = queue.then(() => planStack(stack, options));
  queue = next.catch(() => undefined);
  return next;
}

export function resourcesOf(plan: PlanDocument, type: string): PlanResource[] {
  return plan.resources.filter((resource) => resource.type === type);
}

/** The one resource of that type and name; throws with the names present so a failing test says why. */
export function resourceOf(plan: PlanDocument, type: string, name: string): PlanResource {
  const found = plan.resources.find((resource) => resource.type === type && resource.name === name);
  if (!found) {
    const present = resourcesOf(plan, type).map((resource) => resource.name);
    throw new Error(`no ${type} named ${name} in the ${plan.stack} plan (present: ${present.join(", ") || "none"})`);
  }
  return found;
}
