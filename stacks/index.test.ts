import { describe, expect, it } from "vitest";
import { runPlan } from "./plan/run.js";
import { readStackFile } from "./plan/stack-file.js";

describe("the Pulumi entry point (stacks/index.ts)", () => {
  it("reads the stack's config from the Pulumi runtime and exports the stack outputs, secrets kept secret", async () => {
    const file = readStackFile("dev");
    const plan = await runPlan({
      stack: "dev",
      config: file.config,
      program: async () => ({ ...(await import("./index.js")) }),
    });
    expect(plan.outputs).toMatchObject({
      environment: "dev",
      region: "eu-west-1",
      apiUrl: "https://api.dev.ndt.example.com",
      clusterName: "ndt-dev",
      kubeconfig: "[secret]",
    });
    expect(plan.resources.some((resource) => resource.type === "eks:index:Cluster")).toBe(true);
  });
});
