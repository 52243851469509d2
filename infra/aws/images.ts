import * as aws from "@pulumi/aws";
import * as dockerbuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { imagesOf, type Topology } from "../../stacks/topology.js";

/** What one image is built from. */
export interface ImageBuild {
  /** Key of the build: the image name, `<image>-gpu` for a GPU variant. */
  key: string;
  /** The topology's image name = the ECR repository it is pushed to. */
  image: string;
  /** Relative to the build context (the repository root). */
  dockerfile: string;
  /** `--build-arg APP=…`: the workspace apps/<app> the Dockerfile builds. */
  app: string;
  /** Appended to the release tag (`<imageTag><tagSuffix>`), so variants share a repository with distinct tags. */
  tagSuffix: string;
}

/** Every service image: docker/service.Dockerfile with APP=<image> (apps/<image>/src/server.ts). */
export const SERVICE_DOCKERFILE = "docker/service.Dockerfile";

/**
 * The builds the topology needs, in a stable order: every image it names (the topology is the source of truth, not
 * which apps/ exist yet) from docker/service.Dockerfile with APP=<image> — including `migrations`, the workspace
 * apps/migrations whose entry point applies the migrations and exits — and, for an image a GPU service runs, its GPU
 * variant from docker/<image>-gpu.Dockerfile tagged `<imageTag>-gpu` in the same repository.
 */
export function imageBuilds(topology: Topology): ImageBuild[] {
  const gpuImages = new Set(topology.services.filter((service) => service.gpu).map((service) => service.image));
  return imagesOf(topology).flatMap((image) => [
    { key: image, image, dockerfile: SERVICE_DOCKERFILE, app: image, tagSuffix: "" },
    ...(gpuImages.has(image)
      ? [{ key: `${image}-gpu`, image, dockerfile: `docker/${image}-gpu.Dockerfile`, app: image, tagSuffix: "-gpu" }]
      : []),
  ]);
}

export interface ImagesArgs {
  topology: Topology;
  /** ECR repository URLs by image name (infra/aws/registry.ts `repositoryUrls`). */
  repositories: Record<string, pulumi.Input<string>>;
  /** The release tag every image is pushed under: the commit CI built (`services.imageTag` of the stack config). */
  imageTag: string;
  /**
   * The build context, relative to the Pulumi project directory (where the program runs).
   * @default "." — the repository root: the Dockerfiles need the workspaces and the lockfile
   */
  context?: string;
}

/**
 * Builds every image the topology names with BuildKit (`@pulumi/docker-build`) for linux/amd64 and pushes it to its
 * ECR repository, tagged by the release tag (ECR tags are immutable: one tag, one build). The deployable reference is
 * the pushed digest, `<repository>@sha256:…`, so a pod runs exactly the bytes that were built, whatever happens to
 * tags later. A service with `gpu: true` deploys the GPU variant of its image.
 *
 * Registry credentials come from `aws.ecr.getAuthorizationToken` at deploy time (12-hour tokens, never stored).
 * No registry cache: `cacheTo` would need a mutable cache tag, which the immutable repositories refuse.
 *
 * Cost: ECR storage (see Registry); the builds run where `pulumi up` runs.
 */
export class Images extends pulumi.ComponentResource {
  /** Every build by key (`gateway`, …, `detector-gpu`). */
  readonly images: Record<string, dockerbuild.Image> = {};
  /** `<repository>@<digest>` by key. */
  readonly refs: Record<string, pulumi.Output<string>> = {};
  /** What each image name deploys as: its digest reference, the GPU variant's for an image a GPU service runs. */
  readonly deployRefs: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: ImagesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Images", name, {}, opts);
    const token = aws.ecr.getAuthorizationTokenOutput({}, { parent: this });
    const builds = imageBuilds(args.topology);
    for (const build of builds) {
      const repository = args.repositories[build.image];
      if (repository === undefined)
        throw new Error(`no ECR repository for image "${build.image}": the Registry is built from the topology`);
      const repositoryUrl = pulumi.output(repository);
      const image = new dockerbuild.Image(
        `${name}-${build.key}`,
        {
          context: { location: args.context ?? "." },
          dockerfile: { location: build.dockerfile },
          buildArgs: { APP: build.app },
          platforms: ["linux/amd64"],
          push: true,
          tags: [pulumi.interpolate`${repositoryUrl}:${args.imageTag}${build.tagSuffix}`],
          registries: [
            {
              address: repositoryUrl.apply((url) => url.split("/")[0] ?? url),
              username: token.userName,
              password: pulumi.secret(token.password),
            },
          ],
        },
        { parent: this },
      );
      this.images[build.key] = image;
      this.refs[build.key] = pulumi.interpolate`${repositoryUrl}@${image.digest}`;
    }
    for (const build of builds) {
      const ref = this.refs[build.key];
      if (ref && (build.tagSuffix === "-gpu" || this.deployRefs[build.image] === undefined))
        this.deployRefs[build.image] = ref;
    }
    this.registerOutputs({ refs: this.refs });
  }
}
