import { describe, expect, it } from "vitest";
import type { PlanDocument } from "../../stacks/plan/document.js";
import { planOf } from "../../stacks/plan/testing.js";
import { at, environmentOf } from "./guardrail.js";
import { failing } from "./testing.js";

describe("which environment a plan is checked as", () => {
  const planNamed = (stack: string, environment: string | undefined): PlanDocument => ({
    project: "ndt-platform",
    stack,
    resources: [],
    outputs: environment === undefined ? {} : { environment },
  });

  it("the strictest of the stack's name and its config wins", () => {
    expect(environmentOf(planNamed("prod", "dev"))).toBe("prod");
    expect(environmentOf(planNamed("prod", undefined))).toBe("prod");
    expect(environmentOf(planNamed("dev", "prod"))).toBe("prod");
    expect(environmentOf(planNamed("dev", "dev"))).toBe("dev");
    expect(environmentOf(planNamed("staging", undefined))).toBe("dev");
  });

  it("a stack named prod with dev's config and relaxations fails the prod lines", async () => {
    const plan = await planOf("dev");
    plan.stack = "prod";
    expect(plan.outputs.environment).toBe("dev");
    expect(failing(plan)).toEqual(expect.arrayContaining(["A1", "A7", "A8", "A9", "A10", "A11", "A12", "K7"]));
  });
});

describe("reading a path from plan values", () => {
  it("reads keys that contain dots, as annotation and label keys do", () => {
    const metadata = { annotations: { "ndt.io/needs-kubernetes-api": "true" }, labels: { "a.b": { c: 1 } } };
    expect(at(metadata, "annotations.ndt.io/needs-kubernetes-api")).toBe("true");
    expect(at(metadata, "labels.a.b.c")).toBe(1);
    expect(at({ rules: [{ port: 443 }] }, "rules.0.port")).toBe(443);
    expect(at(metadata, "annotations.ndt.io/other")).toBeUndefined();
  });
});
