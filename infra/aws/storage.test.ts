import * as aws from "@pulumi/aws";
import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource } from "../../stacks/plan/document.js";
import { runPlan } from "../../stacks/plan/run.js";
import { readStackFile } from "../../stacks/plan/stack-file.js";
import { planOf, resourceOf, resourcesOf } from "../../stacks/plan/testing.js";
import { normalizePrefix } from "./storage.js";

const BUCKET = "aws:s3/bucket:Bucket";
const STORAGE_KEY = "arn:aws:kms:eu-west-1:123456789012:key/keys-storage";
const companion = (plan: PlanDocument, kind: string, purpose: string): PlanResource =>
  resourceOf(plan, `aws:s3/${kind[0]?.toLowerCase()}${kind.slice(1)}:${kind}`, `storage-${purpose}`);
const policyOf = (resource: PlanResource) =>
  JSON.parse(String(resource.inputs.policy)) as { Statement: Record<string, unknown>[] };

describe("Storage", () => {
  it("prod: four private, versioned buckets; SSE-KMS with the storage key, the log bucket SSE-S3", async () => {
    const plan = await planOf("prod");
    const buckets = resourcesOf(plan, BUCKET).filter((bucket) => bucket.parent === "ndt:aws:Storage::storage");
    expect(buckets.map((bucket) => bucket.inputs.bucket).sort()).toEqual([
      "ndt-prod-logs-123456789012",
      "ndt-prod-models-123456789012",
      "ndt-prod-reports-123456789012",
      "ndt-prod-uploads-123456789012",
    ]);
    for (const purpose of ["uploads", "reports", "models", "logs"]) {
      expect(companion(plan, "BucketPublicAccessBlock", purpose).inputs).toMatchObject({
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      });
      expect(companion(plan, "BucketVersioning", purpose).inputs.versioningConfiguration).toEqual({
        status: "Enabled",
      });
      const policy = policyOf(companion(plan, "BucketPolicy", purpose));
      expect(policy.Statement[0]).toMatchObject({
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      });
    }
    for (const purpose of ["uploads", "reports", "models"]) {
      expect(companion(plan, "BucketServerSideEncryptionConfiguration", purpose).inputs.rules).toEqual([
        {
          applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: STORAGE_KEY },
          bucketKeyEnabled: true,
        },
      ]);
      expect(companion(plan, "BucketOwnershipControls", purpose).inputs.rule).toEqual({
        objectOwnership: "BucketOwnerEnforced",
      });
      expect(companion(plan, "BucketLogging", purpose).inputs).toEqual({
        bucket: `ndt-prod-${purpose}-123456789012`,
        targetBucket: "ndt-prod-logs-123456789012",
        targetPrefix: `s3/${purpose}/`,
      });
    }
    expect(companion(plan, "BucketServerSideEncryptionConfiguration", "logs").inputs.rules).toEqual([
      { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } },
    ]);
    // Only S3's logging service may write to the log bucket, only for this account's buckets.
    expect(policyOf(companion(plan, "BucketPolicy", "logs")).Statement[1]).toMatchObject({
      Effect: "Allow",
      Principal: { Service: "logging.s3.amazonaws.com" },
      Action: "s3:PutObject",
      Condition: { StringEquals: { "aws:SourceAccount": "123456789012" } },
    });
  });

  it("prod lifecycle: noncurrent versions expire after 90 days, reports after 30, multipart uploads are aborted", async () => {
    const plan = await planOf("prod");
    const rules = (purpose: string) =>
      companion(plan, "BucketLifecycleConfiguration", purpose).inputs.rules as Record<string, unknown>[];
    expect(rules("uploads")).toEqual([
      {
        id: "expire-noncurrent-versions",
        status: "Enabled",
        filter: { prefix: "" },
        noncurrentVersionExpiration: { noncurrentDays: 90 },
      },
      {
        id: "abort-incomplete-multipart-uploads",
        status: "Enabled",
        filter: { prefix: "" },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
      },
    ]);
    expect(rules("reports")[2]).toEqual({
      id: "expire-reports",
      status: "Enabled",
      filter: { prefix: "" },
      expiration: { days: 30 },
    });
    expect(rules("logs")[2]).toMatchObject({ expiration: { days: 365 } });
  });

  it("prod CDN: OAC to the reports bucket, signed URLs only, HTTPS with TLSv1.2_2021, WAF and logging", async () => {
    const plan = await planOf("prod");
    const distribution = resourceOf(plan, "aws:cloudfront/distribution:Distribution", "storage-media");
    expect(distribution.inputs).toMatchObject({
      aliases: ["media.ndt.example.com"],
      origins: [
        {
          originId: "media",
          domainName: "ndt-prod-reports-123456789012.s3.eu-west-1.amazonaws.com",
          originAccessControlId: "storage-media-id",
        },
      ],
      defaultCacheBehavior: {
        targetOriginId: "media",
        viewerProtocolPolicy: "redirect-to-https",
        trustedKeyGroups: ["storage-media-signers-id"],
      },
      viewerCertificate: { minimumProtocolVersion: "TLSv1.2_2021", sslSupportMethod: "sni-only" },
      // CloudFront takes only us-east-1 web ACLs and certificates: both come from the us-east-1 provider
      webAclId: "arn:aws:wafv2:us-east-1:123456789012:storage-media",
      loggingConfig: { bucket: "ndt-prod-logs-123456789012.s3.amazonaws.com", prefix: "cloudfront/" },
    });
    expect(
      resourceOf(plan, "aws:cloudfront/originAccessControl:OriginAccessControl", "storage-media").inputs,
    ).toMatchObject({ originAccessControlOriginType: "s3", signingBehavior: "always", signingProtocol: "sigv4" });
    // Only this distribution may read the reports bucket.
    expect(policyOf(companion(plan, "BucketPolicy", "reports")).Statement[1]).toEqual({
      Sid: "CloudFrontReadsThroughOac",
      Effect: "Allow",
      Principal: { Service: "cloudfront.amazonaws.com" },
      Action: "s3:GetObject",
      Resource: "arn:aws:s3:::ndt-prod-reports-123456789012/*",
      Condition: { StringEquals: { "AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/STORAGE-MEDIA" } },
    });
    const waf = resourceOf(plan, "aws:wafv2/webAcl:WebAcl", "storage-media");
    expect(waf.inputs.scope).toBe("CLOUDFRONT");
    const rules = waf.inputs.rules as { name: string; statement: Record<string, unknown> }[];
    expect(rules.map((rule) => rule.name)).toEqual([
      "AWSManagedRulesAmazonIpReputationList",
      "AWSManagedRulesCommonRuleSet",
      "AWSManagedRulesKnownBadInputsRuleSet",
      "rate-limit-per-ip",
    ]);
    expect(rules[3]?.statement).toEqual({ rateBasedStatement: { limit: 2000, aggregateKeyType: "IP" } });
    expect(resourceOf(plan, "pulumi:providers:aws", "storage-us-east-1").inputs.region).toBe("us-east-1");
  });

  it("validates an ACM certificate for the media host by DNS in the platform's zone, and aliases the host", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "aws:acm/certificate:Certificate", "storage-media").inputs).toMatchObject({
      domainName: "media.ndt.example.com",
      validationMethod: "DNS",
    });
    expect(resourceOf(plan, "aws:route53/record:Record", "storage-media-validation").inputs).toMatchObject({
      zoneId: "ZNDTEXAMPLECOM",
      type: "CNAME",
      name: "_storage-media.media.ndt.example.com.",
    });
    expect(resourceOf(plan, "aws:acm/certificateValidation:CertificateValidation", "storage-media").inputs).toEqual({
      certificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/storage-media",
      validationRecordFqdns: ["_storage-media.media.ndt.example.com"],
    });
    expect(resourceOf(plan, "aws:route53/record:Record", "storage-media-a").inputs).toMatchObject({
      name: "media.ndt.example.com",
      type: "A",
      aliases: [{ name: "storage-media.cloudfront.net", zoneId: "Z2FDTNDATAQYW2", evaluateTargetHealth: false }],
    });
  });

  it("keeps the signing private key out of the plan: a secret in Secrets Manager, encrypted with the storage key", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, "tls:index/privateKey:PrivateKey", "storage-media-signing").inputs).toMatchObject({
      algorithm: "RSA",
      rsaBits: 2048,
    });
    expect(resourceOf(plan, "aws:secretsmanager/secret:Secret", "storage-media-signing-key").inputs.kmsKeyId).toBe(
      STORAGE_KEY,
    );
    expect(
      resourceOf(plan, "aws:secretsmanager/secretVersion:SecretVersion", "storage-media-signing-key").inputs
        .secretString,
    ).toBe("[secret]");
    expect(JSON.stringify(plan)).not.toContain("PRIVATE KEY");
    expect(plan.outputs).toMatchObject({
      uploadsBucket: "ndt-prod-uploads-123456789012",
      reportsBucket: "ndt-prod-reports-123456789012",
      modelsBucket: "ndt-prod-models-123456789012",
      mediaDomain: "media.ndt.example.com",
      mediaKeyPairId: "storage-media-signing-id",
    });
  });

  it("dev: no log bucket, no access logging, no WAF; same TLS, OAC and signed URLs; shorter lifecycles", async () => {
    const plan = await planOf("dev");
    const buckets = resourcesOf(plan, BUCKET).filter((bucket) => bucket.parent === "ndt:aws:Storage::storage");
    expect(buckets.map((bucket) => bucket.name).sort()).toEqual([
      "storage-models",
      "storage-reports",
      "storage-uploads",
    ]);
    expect(resourcesOf(plan, "aws:s3/bucketLogging:BucketLogging")).toEqual([]);
    expect(resourcesOf(plan, "aws:wafv2/webAcl:WebAcl")).toEqual([]);
    const distribution = resourceOf(plan, "aws:cloudfront/distribution:Distribution", "storage-media");
    expect(distribution.inputs.webAclId).toBeUndefined();
    expect(distribution.inputs.loggingConfig).toBeUndefined();
    expect(distribution.inputs).toMatchObject({
      aliases: ["media.dev.ndt.example.com"],
      defaultCacheBehavior: {
        viewerProtocolPolicy: "redirect-to-https",
        trustedKeyGroups: ["storage-media-signers-id"],
      },
      viewerCertificate: { minimumProtocolVersion: "TLSv1.2_2021" },
    });
    const rules = companion(plan, "BucketLifecycleConfiguration", "reports").inputs.rules as Record<string, unknown>[];
    expect(rules[0]).toMatchObject({ noncurrentVersionExpiration: { noncurrentDays: 7 } });
    expect(rules[2]).toMatchObject({ expiration: { days: 7 } });
  });
});

describe("Storage grants", () => {
  it("scope a role's S3 access to its bucket prefix and its KMS use to the storage key through S3", async () => {
    const file = readStackFile("prod");
    const plan = await runPlan({
      stack: "prod",
      config: file.config,
      program: async () => {
        const { Keys } = await import("./keys.js");
        const { Storage } = await import("./storage.js");
        const storage = new Storage("storage", {
          keys: new Keys("keys"),
          zoneName: "ndt.example.com",
          mediaHost: "media.ndt.example.com",
          noncurrentVersionDays: 30,
          reportsExpireDays: 30,
        });
        const role = new aws.iam.Role("files", { assumeRolePolicy: "{}" });
        storage.grantReadWrite("uploads", role, "org-1/");
        storage.grantRead("models", role, "detector/*");
        return {};
      },
    });
    const readWrite = resourceOf(plan, "aws:iam/rolePolicy:RolePolicy", "storage-uploads-readwrite-files-org-1");
    expect(readWrite.inputs.role).toBe("files");
    expect(policyOf(readWrite).Statement).toEqual([
      {
        Sid: "ListUnderPrefix",
        Effect: "Allow",
        Action: "s3:ListBucket",
        Resource: "arn:aws:s3:::ndt-prod-uploads-123456789012",
        Condition: { StringLike: { "s3:prefix": ["org-1/*"] } },
      },
      {
        Sid: "ObjectsUnderPrefix",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        Resource: "arn:aws:s3:::ndt-prod-uploads-123456789012/org-1/*",
      },
      {
        Sid: "StorageKeyThroughS3",
        Effect: "Allow",
        Action: ["kms:Decrypt", "kms:GenerateDataKey"],
        Resource: STORAGE_KEY,
        Condition: { StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com" } },
      },
    ]);
    const read = policyOf(resourceOf(plan, "aws:iam/rolePolicy:RolePolicy", "storage-models-read-files-detector"));
    expect(read.Statement[1]).toMatchObject({
      Action: ["s3:GetObject", "s3:GetObjectVersion"],
      Resource: "arn:aws:s3:::ndt-prod-models-123456789012/detector/*",
    });
    expect(read.Statement[2]).toMatchObject({ Action: ["kms:Decrypt"] });
    for (const policy of resourcesOf(plan, "aws:iam/rolePolicy:RolePolicy")) {
      for (const statement of policyOf(policy).Statement) expect(statement.Resource).not.toBe("*");
    }
  });

  it("refuse a prefix that would widen the grant to the whole bucket or to other prefixes", () => {
    expect(normalizePrefix("org-1/*")).toBe("org-1/");
    expect(() => normalizePrefix("")).toThrow(/is empty/);
    expect(() => normalizePrefix("*")).toThrow(/is empty/);
    expect(() => normalizePrefix("org-*/reports/")).toThrow(/wildcard/);
    expect(() => normalizePrefix("/org-1/")).toThrow(/leading slash/);
  });
});
