import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface RegistryArgs {
  /** One repository per app, named `<namePrefix>/<app>`. @example ["gateway", "auth", "files", "detector", "reports"] */
  apps: readonly string[];
  /** Tagged images kept per repository; older ones expire so storage does not grow without bound. */
  keepImages: number;
  /**
   * Days an untagged image (a superseded build layer set) is kept before it expires.
   * @default 7
   */
  untaggedExpireDays?: number;
  /**
   * A customer-managed key for image layers.
   * @default undefined — the AWS-managed `aws/ecr` KMS key: images hold no secrets (K11), and a CMK would add a key and
   * grants for every pull without narrowing who can read them (IAM already does)
   */
  kmsKeyArn?: pulumi.Input<string>;
  /**
   * Repository name prefix.
   * @default `ndt-${stack}`
   */
  namePrefix?: string;
  /** Adjust each repository's args before it is built (STYLE.md rule 7); the app name is passed along. */
  transform?: { repository?: (args: aws.ecr.RepositoryArgs, app: string) => void };
}

/**
 * One ECR repository per app: scanned on push, immutable tags (a tag always names the image that was tested),
 * KMS-encrypted, and a lifecycle policy keeping the newest `keepImages` tagged images and expiring untagged ones.
 *
 * Cost: $0.10/GB-month of images. dev: 5 repos × 20 images × ~0.5 GB shared layers ≈ $2–5/month; prod: 100 images
 * each ≈ $10–30/month. Basic scanning on push is free.
 */
export class Registry extends pulumi.ComponentResource {
  /** `<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<app>` per app: where CI pushes and pods pull. */
  readonly repositoryUrls: Record<string, pulumi.Output<string>>;
  readonly repositoryArns: Record<string, pulumi.Output<string>>;

  constructor(name: string, args: RegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Registry", name, {}, opts);
    const parent = this;
    const settings = normalize();
    const repositories = settings.apps.map((app) => [app, createRepository(app)] as const);
    for (const [app, repository] of repositories) createLifecyclePolicy(app, repository);

    this.repositoryUrls = Object.fromEntries(repositories.map(([app, repo]) => [app, repo.repositoryUrl]));
    this.repositoryArns = Object.fromEntries(repositories.map(([app, repo]) => [app, repo.arn]));
    this.registerOutputs({ repositoryUrls: this.repositoryUrls });

    function normalize() {
      const problems: string[] = [];
      if (args.apps.length === 0) problems.push("apps: at least one app");
      const duplicates = args.apps.filter((app, index) => args.apps.indexOf(app) !== index);
      if (duplicates.length > 0) problems.push(`apps: listed twice: ${[...new Set(duplicates)].join(", ")}`);
      for (const app of args.apps) {
        if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(app)) problems.push(`apps: "${app}" is not a valid repository name`);
      }
      if (!Number.isInteger(args.keepImages) || args.keepImages < 1) problems.push("keepImages: a whole number ≥ 1");
      if (problems.length > 0) throw new Error(`Registry ${name} is invalid:\n  - ${problems.join("\n  - ")}`);
      return {
        apps: [...args.apps],
        untaggedExpireDays: args.untaggedExpireDays ?? 7,
        namePrefix: args.namePrefix ?? `ndt-${pulumi.getStack()}`,
      };
    }

    function createRepository(app: string): aws.ecr.Repository {
      const repositoryArgs: aws.ecr.RepositoryArgs = {
        name: `${settings.namePrefix}/${app}`,
        imageTagMutability: "IMMUTABLE",
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [
          args.kmsKeyArn ? { encryptionType: "KMS", kmsKey: args.kmsKeyArn } : { encryptionType: "KMS" },
        ],
        // Deleting a repository with images in it is refused: images are the deployable history.
        forceDelete: false,
        tags: { "ndt.io/app": app },
      };
      args.transform?.repository?.(repositoryArgs, app);
      return new aws.ecr.Repository(`${name}-${app}`, repositoryArgs, { parent });
    }

    function createLifecyclePolicy(app: string, repository: aws.ecr.Repository): aws.ecr.LifecyclePolicy {
      return new aws.ecr.LifecyclePolicy(
        `${name}-${app}`,
        {
          repository: repository.name,
          policy: JSON.stringify({
            rules: [
              {
                rulePriority: 1,
                description: `Expire untagged images after ${settings.untaggedExpireDays} days`,
                selection: {
                  tagStatus: "untagged",
                  countType: "sinceImagePushed",
                  countUnit: "days",
                  countNumber: settings.untaggedExpireDays,
                },
                action: { type: "expire" },
              },
              {
                rulePriority: 2,
                description: `Keep the newest ${args.keepImages} tagged images`,
                selection: {
                  tagStatus: "tagged",
                  tagPatternList: ["*"],
                  countType: "imageCountMoreThan",
                  countNumber: args.keepImages,
                },
                action: { type: "expire" },
              },
            ],
          }),
        },
        { parent },
      );
    }
  }
}
