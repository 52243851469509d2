import { describe, expect, it } from "vitest";
import type { PlanDocument } from "../../../stacks/plan/document.js";
import { planOf, resourceOf } from "../../../stacks/plan/testing.js";
import { failing } from "../testing.js";

describe("cluster guardrails A1–A6", () => {
  it("pass on the prod and dev plans", async () => {
    expect(failing(await planOf("prod"))).toEqual([]);
    expect(failing(await planOf("dev"))).toEqual([]);
  });

  const breakages: [string, string, (plan: PlanDocument) => void][] = [
    [
      "A1",
      "a public prod endpoint",
      (plan) => {
        resourceOf(plan, "eks:index:Cluster", "cluster-eks").inputs.endpointPublicAccess = true;
      },
    ],
    [
      "A2",
      "a missing audit log",
      (plan) => {
        resourceOf(plan, "eks:index:Cluster", "cluster-eks").inputs.enabledClusterLogTypes = ["api"];
      },
    ],
    [
      "A3",
      "authentication through the aws-auth ConfigMap",
      (plan) => {
        resourceOf(plan, "eks:index:Cluster", "cluster-eks").inputs.authenticationMode = "CONFIG_MAP";
      },
    ],
    [
      "A4",
      "IMDSv1 allowed on GPU nodes",
      (plan) => {
        const template = resourceOf(plan, "aws:ec2/launchTemplate:LaunchTemplate", "cluster-gpu-nodes");
        (template.inputs.metadataOptions as Record<string, string>).httpTokens = "optional";
      },
    ],
    [
      "A5",
      "a GPU group without its taint",
      (plan) => {
        resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-gpu").inputs.taints = [];
      },
    ],
    [
      "A6",
      "network policy enforcement off",
      (plan) => {
        resourceOf(plan, "eks:index:Cluster", "cluster-eks").inputs.vpcCniOptions = { enableNetworkPolicy: false };
      },
    ],
  ];
  for (const [id, what, breakIt] of breakages) {
    it(`${id} alone fails on ${what}`, async () => {
      const plan = await planOf("prod");
      breakIt(plan);
      expect(failing(plan)).toEqual([id]);
    });
  }

  it("A1 lets dev keep a public endpoint restricted to CIDRs, but never open to all", async () => {
    const plan = await planOf("dev");
    expect(failing(plan)).toEqual([]);
    resourceOf(plan, "eks:index:Cluster", "cluster-eks").inputs.publicAccessCidrs = ["0.0.0.0/0"];
    expect(failing(plan)).toEqual(["A1"]);
  });

  it("A5 requires dev's GPU group to scale from zero", async () => {
    const plan = await planOf("dev");
    (
      resourceOf(plan, "eks:index:ManagedNodeGroup", "cluster-gpu").inputs.scalingConfig as Record<string, number>
    ).minSize = 1;
    expect(failing(plan)).toEqual(["A5"]);
  });
});
