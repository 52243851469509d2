import { describe, expect, it } from "vitest";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";

const APPS = ["auth", "detector", "files", "gateway", "reports"];

describe("Registry", () => {
  it("prod: one scanned, immutable, KMS-encrypted repository per app, keeping 100 tagged images", async () => {
    const plan = await planOf("prod");
    const repositories = resourcesOf(plan, "aws:ecr/repository:Repository");
    // The platform passes the topology's images: every app, plus whatever else the topology ships (migrations).
    expect(repositories.map((repository) => repository.inputs.name)).toEqual(
      expect.arrayContaining(APPS.map((app) => `ndt-prod/${app}`)),
    );
    for (const repository of repositories) {
      expect(repository.inputs).toMatchObject({
        imageTagMutability: "IMMUTABLE",
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [{ encryptionType: "KMS" }],
        forceDelete: false,
      });
      expect(repository.parent).toBe("ndt:aws:Registry::registry");
    }
    const lifecycle = resourceOf(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "registry-detector");
    expect(lifecycle.inputs.repository).toBe("ndt-prod/detector");
    expect(
      JSON.parse(String(lifecycle.inputs.policy)).rules.map((rule: { selection: unknown }) => rule.selection),
    ).toEqual([
      { tagStatus: "untagged", countType: "sinceImagePushed", countUnit: "days", countNumber: 7 },
      { tagStatus: "tagged", tagPatternList: ["*"], countType: "imageCountMoreThan", countNumber: 100 },
    ]);
    expect(plan.outputs.repositoryUrls).toMatchObject(
      Object.fromEntries(APPS.map((app) => [app, `123456789012.dkr.ecr.eu-west-1.amazonaws.com/ndt-prod/${app}`])),
    );
  });

  it("dev: the same repositories under the dev prefix, keeping 20 tagged images", async () => {
    const plan = await planOf("dev");
    const lifecycle = resourceOf(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "registry-gateway");
    expect(lifecycle.inputs.repository).toBe("ndt-dev/gateway");
    expect(JSON.parse(String(lifecycle.inputs.policy)).rules[1].selection.countNumber).toBe(20);
    const names = resourcesOf(plan, "aws:ecr/repository:Repository").map((repository) => repository.inputs.name);
    expect(names).toEqual(expect.arrayContaining(APPS.map((app) => `ndt-dev/${app}`)));
  });
});
