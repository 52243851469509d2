/**
 * The images the Pulumi program builds and pushes (infra/aws/images.ts), in the offline plans: one build per
 * image the topology names plus the GPU variant of a GPU service's image, linux/amd64, pushed to the stack's ECR
 * repository under the configured release tag with ECR credentials (secret), and deployed by digest.
 */
import { describe, expect, it } from "vitest";
import { planOf, resourcesOf } from "../../stacks/plan/testing.js";
import { imagesOf, topology } from "../../stacks/topology.js";
import { imageBuilds, SERVICE_DOCKERFILE } from "./images.js";

type Json = Record<string, unknown>;
const REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

describe("imageBuilds", () => {
  it("builds every image the topology names, and a GPU variant for the image a GPU service runs", () => {
    const builds = imageBuilds(topology);
    expect(builds.map((build) => build.key).sort()).toEqual(
      [...imagesOf(topology), ...topology.services.filter((s) => s.gpu).map((s) => `${s.image}-gpu`)].sort(),
    );
    expect(builds.find((build) => build.key === "migrations")).toMatchObject({
      dockerfile: SERVICE_DOCKERFILE,
      app: "migrations",
    });
    expect(builds.find((build) => build.key === "detector-gpu")).toMatchObject({
      image: "detector",
      dockerfile: "docker/detector-gpu.Dockerfile",
      app: "detector",
      tagSuffix: "-gpu",
    });
  });
});

describe.each(["prod", "dev"])("the %s plan's images", (stack) => {
  const tag = stack === "prod" ? "v0.1.0" : "git-474ae8c";

  it("builds and pushes each image for linux/amd64 under the release tag, with ECR credentials kept secret", async () => {
    const plan = await planOf(stack);
    const images = resourcesOf(plan, "docker-build:index:Image");
    expect(images.map((image) => image.name).sort()).toEqual(
      imageBuilds(topology)
        .map((build) => `images-${build.key}`)
        .sort(),
    );
    for (const build of imageBuilds(topology)) {
      const inputs = images.find((image) => image.name === `images-${build.key}`)?.inputs as Json;
      expect(inputs).toMatchObject({
        context: { location: "." },
        dockerfile: { location: build.dockerfile },
        buildArgs: { APP: build.app },
        platforms: ["linux/amd64"],
        push: true,
        tags: [`${REGISTRY}/ndt-${stack}/${build.image}:${tag}${build.tagSuffix}`],
        registries: [{ address: REGISTRY, username: "AWS", password: "[secret]" }],
      });
    }
  });

  it("exports each build's digest reference", async () => {
    const plan = await planOf(stack);
    const refs = plan.outputs.imageRefs as Record<string, string>;
    for (const build of imageBuilds(topology))
      expect(refs[build.key]).toMatch(new RegExp(`^${REGISTRY}/ndt-${stack}/${build.image}@sha256:[a-f0-9]{64}$`));
    expect(new Set(Object.values(refs)).size).toBe(Object.keys(refs).length);
  });
});
