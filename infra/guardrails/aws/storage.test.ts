import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource } from "../../../stacks/plan/document.js";
import { planOf, resourceOf } from "../../../stacks/plan/testing.js";
import { failing, findingsOf } from "../testing.js";

const s3 = (plan: PlanDocument, kind: string, name: string): PlanResource =>
  resourceOf(plan, `aws:s3/${kind[0]?.toLowerCase()}${kind.slice(1)}:${kind}`, name);
const distribution = (plan: PlanDocument) =>
  resourceOf(plan, "aws:cloudfront/distribution:Distribution", "storage-media");
const nested = (resource: PlanResource, key: string) => resource.inputs[key] as Record<string, unknown>;
const editPolicy = (resource: PlanResource, key: string, edit: (policy: { Statement: unknown[] }) => void) => {
  const policy = JSON.parse(String(resource.inputs[key]));
  edit(policy);
  resource.inputs[key] = JSON.stringify(policy);
};
const remove = (plan: PlanDocument, resource: PlanResource) => {
  plan.resources = plan.resources.filter((candidate) => candidate !== resource);
};

const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
/** A role policy another component could declare: one statement, for the role named. */
const addRolePolicy = (plan: PlanDocument, role: string, statement: Record<string, unknown>) => {
  plan.resources.push({
    type: ROLE_POLICY,
    name: `test-${role}-${String(statement.Sid)}`,
    parent: null,
    inputs: { role, policy: JSON.stringify({ Version: "2012-10-17", Statement: [statement] }) },
  });
};
const attachPolicy = (plan: PlanDocument, role: string, policyArn: string) => {
  plan.resources.push({
    type: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    name: `test-${role}-${policyArn.slice(policyArn.lastIndexOf("/") + 1)}`,
    parent: null,
    inputs: { role, policyArn },
  });
};

describe("storage, CDN, IAM, key and registry guardrails A11, A12, A14, A15, A16", () => {
  it("pass on the prod and dev plans", async () => {
    expect(failing(await planOf("prod"))).toEqual([]);
    expect(failing(await planOf("dev"))).toEqual([]);
  });

  const breakages: [string, string, (plan: PlanDocument) => void, string?][] = [
    [
      "A11",
      "one public-access-block flag off",
      (plan) => {
        s3(plan, "BucketPublicAccessBlock", "storage-uploads").inputs.restrictPublicBuckets = false;
      },
      "public access block flags off: restrictPublicBuckets",
    ],
    [
      "A11",
      "versioning suspended",
      (plan) => {
        s3(plan, "BucketVersioning", "storage-models").inputs.versioningConfiguration = { status: "Suspended" };
      },
      "versioning is not enabled",
    ],
    [
      "A11",
      "SSE-S3 on a data bucket",
      (plan) => {
        s3(plan, "BucketServerSideEncryptionConfiguration", "storage-reports").inputs.rules = [
          { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } },
        ];
      },
      "default encryption is not SSE-KMS with a customer-managed key",
    ],
    [
      "A11",
      "a bucket policy without the TLS-only deny",
      (plan) => {
        editPolicy(s3(plan, "BucketPolicy", "storage-uploads"), "policy", (policy) => {
          policy.Statement = policy.Statement.slice(1);
        });
      },
      "no bucket policy statement denies non-TLS requests",
    ],
    [
      "A11",
      "a bucket without access logging",
      (plan) => remove(plan, s3(plan, "BucketLogging", "storage-uploads")),
      "server access logging is off",
    ],
    [
      "A11",
      "a bucket policy allowing principal *",
      (plan) => {
        editPolicy(s3(plan, "BucketPolicy", "storage-reports"), "policy", (policy) => {
          policy.Statement.push({ Sid: "Public", Effect: "Allow", Principal: { AWS: "*" }, Action: "s3:GetObject" });
        });
      },
      "bucket policy allows principal * (Public)",
    ],
    [
      "A11",
      "a TLS-only deny that covers the bucket but not its objects",
      (plan) => {
        editPolicy(s3(plan, "BucketPolicy", "storage-uploads"), "policy", (policy) => {
          (policy.Statement[0] as { Resource: string[] }).Resource = ["arn:aws:s3:::ndt-prod-uploads-123456789012"];
        });
      },
      "the bucket policy's deny of non-TLS requests does not cover arn:aws:s3:::ndt-prod-uploads-123456789012/*",
    ],
    [
      "A11",
      "a TLS-only deny that covers the objects but not the bucket",
      (plan) => {
        editPolicy(s3(plan, "BucketPolicy", "storage-models"), "policy", (policy) => {
          (policy.Statement[0] as { Resource: string }).Resource = "arn:aws:s3:::ndt-prod-models-123456789012/*";
        });
      },
      "the bucket policy's deny of non-TLS requests does not cover arn:aws:s3:::ndt-prod-models-123456789012",
    ],
    [
      "A12",
      "viewers allowed on HTTP",
      (plan) => {
        nested(distribution(plan), "defaultCacheBehavior").viewerProtocolPolicy = "allow-all";
      },
      "viewer protocol policy allow-all lets viewers use HTTP",
    ],
    [
      "A12",
      "TLS 1.0 allowed",
      (plan) => {
        nested(distribution(plan), "viewerCertificate").minimumProtocolVersion = "TLSv1_2016";
      },
      "minimum protocol TLSv1_2016 is older than TLSv1.2_2021",
    ],
    [
      "A12",
      "the default CloudFront certificate in prod",
      (plan) => {
        distribution(plan).inputs.viewerCertificate = { cloudfrontDefaultCertificate: true };
      },
      "no custom ACM certificate",
    ],
    [
      "A12",
      "an S3 origin without origin access control",
      (plan) => {
        const origins = distribution(plan).inputs.origins as Record<string, unknown>[];
        delete origins[0]?.originAccessControlId;
      },
      "S3 origin ndt-prod-reports-123456789012.s3.eu-west-1.amazonaws.com has no origin access control",
    ],
    [
      "A12",
      "an origin access control that does not sign",
      (plan) => {
        resourceOf(
          plan,
          "aws:cloudfront/originAccessControl:OriginAccessControl",
          "storage-media",
        ).inputs.signingBehavior = "never";
      },
      "origin access control does not sign every request with SigV4",
    ],
    [
      "A12",
      "no WAF in prod",
      (plan) => {
        delete distribution(plan).inputs.webAclId;
      },
      "no WAFv2 web ACL",
    ],
    [
      "A12",
      "no CloudFront logging in prod",
      (plan) => {
        delete distribution(plan).inputs.loggingConfig;
      },
      "standard logging is off",
    ],
    [
      "A14",
      "an inline policy allowing * on *",
      (plan) => {
        resourceOf(plan, "aws:iam/role:Role", "cluster-irsa-ebs-csi").inputs.inlinePolicies = [
          {
            name: "admin",
            policy: JSON.stringify({ Statement: [{ Sid: "All", Effect: "Allow", Action: "*", Resource: "*" }] }),
          },
        ];
      },
      "statement All allows * actions on * resources",
    ],
    [
      "A14",
      "an IRSA trust policy open to every service account",
      (plan) => {
        editPolicy(resourceOf(plan, "aws:iam/role:Role", "cluster-irsa-ebs-csi"), "assumeRolePolicy", (policy) => {
          const statement = policy.Statement[0] as { Condition: Record<string, Record<string, string>> };
          const [subject] = Object.keys(statement.Condition.StringEquals ?? {}).filter((key) => key.endsWith(":sub"));
          delete statement.Condition.StringEquals?.[subject ?? ""];
          statement.Condition.StringLike = { [subject ?? ""]: "system:serviceaccount:*" };
        });
      },
      "IRSA trust policy is not scoped to one service account (StringEquals <issuer>:sub)",
    ],
    [
      "A14",
      "an Allow statement with NotResource",
      (plan) =>
        addRolePolicy(plan, "cluster-node-role", {
          Sid: "AllButLogs",
          Effect: "Allow",
          Action: "s3:GetObject",
          NotResource: "arn:aws:s3:::ndt-prod-logs-123456789012/*",
        }),
      "statement AllButLogs allows with NotResource: everything but what it names",
    ],
    [
      "A14",
      "an Allow statement with NotAction on one bucket",
      (plan) =>
        addRolePolicy(plan, "cluster-node-role", {
          Sid: "AllButDelete",
          Effect: "Allow",
          NotAction: "s3:DeleteObject",
          Resource: "arn:aws:s3:::ndt-prod-uploads-123456789012/*",
        }),
      "statement AllButDelete allows with NotAction: everything but what it names",
    ],
    [
      "A14",
      "s3:* on every bucket",
      (plan) =>
        addRolePolicy(plan, "cluster-node-role", {
          Sid: "AllBuckets",
          Effect: "Allow",
          Action: ["s3:*"],
          Resource: ["arn:aws:s3:::*", "arn:aws:s3:::*/*"],
        }),
      "statement AllBuckets allows s3:* on every resource (arn:aws:s3:::*)",
    ],
    [
      "A14",
      "s3:* on *",
      (plan) =>
        addRolePolicy(plan, "cluster-node-role", {
          Sid: "S3Everywhere",
          Effect: "Allow",
          Action: "s3:*",
          Resource: "*",
        }),
      "statement S3Everywhere allows s3:* on every resource (*)",
    ],
    [
      "A14",
      "an IRSA role's S3 grant on a wildcard bucket name",
      (plan) => {
        editPolicy(
          resourceOf(plan, ROLE_POLICY, "storage-uploads-readwrite-cluster-irsa-files-uploads"),
          "policy",
          (policy) => {
            (policy.Statement[1] as { Resource: string }).Resource = "arn:aws:s3:::ndt-prod-*/uploads/*";
          },
        );
      },
      "IRSA role cluster-irsa-files: statement ObjectsUnderPrefix grants S3 on arn:aws:s3:::ndt-prod-*/uploads/*, not one named bucket of the platform",
    ],
    [
      "A14",
      "an IRSA role's S3 grant on a bucket that is not the platform's",
      (plan) => {
        editPolicy(
          resourceOf(plan, ROLE_POLICY, "storage-uploads-read-cluster-irsa-detector-uploads"),
          "policy",
          (policy) => {
            (policy.Statement[1] as { Resource: string }).Resource = "arn:aws:s3:::someone-elses-bucket/*";
          },
        );
      },
      "IRSA role cluster-irsa-detector: statement ObjectsUnderPrefix grants S3 on arn:aws:s3:::someone-elses-bucket/*, not one named bucket of the platform",
    ],
    [
      "A14",
      "an IRSA role given AmazonS3ReadOnlyAccess",
      (plan) => attachPolicy(plan, "cluster-irsa-reports", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"),
      "IRSA role cluster-irsa-reports: AWS-managed policy AmazonS3ReadOnlyAccess grants S3 on every bucket",
    ],
    [
      "A15",
      "a KMS key without rotation",
      (plan) => {
        resourceOf(plan, "aws:kms/key:Key", "keys-storage").inputs.enableKeyRotation = false;
      },
      "key rotation is off",
    ],
    [
      "A15",
      "a secret value in plain inputs",
      (plan) => {
        resourceOf(
          plan,
          "aws:secretsmanager/secretVersion:SecretVersion",
          "storage-media-signing-key",
        ).inputs.secretString = '{"privateKeyPem":"-----BEGIN RSA PRIVATE KEY-----"}';
      },
      "secretString is a plain value, not a secret",
    ],
    [
      "A15",
      "a password inside a URL in a chart's values",
      (plan) => {
        const exporter = resourceOf(plan, "kubernetes:helm.sh/v3:Release", "observability-rabbitmq-exporter");
        (nested(exporter, "values").rabbitmq as Record<string, unknown>).url =
          "https://ndt:hunter2@broker-rabbitmq.mq.eu-west-1.amazonaws.com";
      },
      "values.rabbitmq.url carries a password in its URL",
    ],
    [
      "A16",
      "a repository not scanned on push",
      (plan) => {
        resourceOf(plan, "aws:ecr/repository:Repository", "registry-files").inputs.imageScanningConfiguration = {
          scanOnPush: false,
        };
      },
      "images are not scanned on push",
    ],
    [
      "A16",
      "mutable tags",
      (plan) => {
        resourceOf(plan, "aws:ecr/repository:Repository", "registry-gateway").inputs.imageTagMutability = "MUTABLE";
      },
      "image tags are mutable",
    ],
    [
      "A16",
      "a repository without a lifecycle policy",
      (plan) => remove(plan, resourceOf(plan, "aws:ecr/lifecyclePolicy:LifecyclePolicy", "registry-auth")),
      "no lifecycle policy",
    ],
  ];
  for (const [id, what, breakIt, reason] of breakages) {
    it(`${id} alone fails on ${what}`, async () => {
      const plan = await planOf("prod");
      breakIt(plan);
      expect(failing(plan)).toEqual([id]);
      if (reason) expect(findingsOf(plan, id).map((finding) => finding.reason)).toEqual([reason]);
    });
  }

  it("A14 fails on an AWS-managed policy that grants broad access, attached to any role", async () => {
    for (const managed of ["AdministratorAccess", "PowerUserAccess", "IAMFullAccess", "AmazonS3FullAccess"]) {
      const plan = await planOf("prod");
      attachPolicy(plan, "cluster-node-role", `arn:aws:iam::aws:policy/${managed}`);
      expect(failing(plan)).toEqual(["A14"]);
      expect(findingsOf(plan, "A14")).toEqual([
        {
          guardrail: "A14",
          resource: `aws:iam/rolePolicyAttachment:RolePolicyAttachment::test-cluster-node-role-${managed}`,
          reason: `attaches AWS-managed policy ${managed}, which grants broad access`,
        },
      ]);
    }
  });

  it("A11 names the bucket and the reason", async () => {
    const plan = await planOf("prod");
    s3(plan, "BucketVersioning", "storage-models").inputs.versioningConfiguration = { status: "Suspended" };
    expect(findingsOf(plan, "A11")).toEqual([
      { guardrail: "A11", resource: "aws:s3/bucket:Bucket::storage-models", reason: "versioning is not enabled" },
    ]);
  });

  it("A11 and A12 let dev go without access logs, WAF and a custom certificate, but not without HTTPS", async () => {
    const plan = await planOf("dev");
    distribution(plan).inputs.viewerCertificate = { cloudfrontDefaultCertificate: true };
    expect(failing(plan)).toEqual([]);
    nested(distribution(plan), "defaultCacheBehavior").viewerProtocolPolicy = "allow-all";
    expect(failing(plan)).toEqual(["A12"]);
  });

  it("A11 requires the log bucket to accept S3 server access logs (SSE-S3) rather than SSE-KMS", async () => {
    const plan = await planOf("prod");
    s3(plan, "BucketServerSideEncryptionConfiguration", "storage-logs").inputs.rules = [];
    expect(findingsOf(plan, "A11")).toEqual([
      {
        guardrail: "A11",
        resource: "aws:s3/bucket:Bucket::storage-logs",
        reason: "log bucket has no default encryption",
      },
    ]);
  });
});
