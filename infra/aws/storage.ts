import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { BucketConnection } from "./connections.js";
import type { Keys } from "./keys.js";
import { applyTransform, type Transform } from "./transform.js";
import { logicalNameOf } from "./logical-name.js";

/** The buckets services read and write; `logs` is internal to the component. */
export type BucketPurpose = "uploads" | "reports" | "models";
type AnyBucket = BucketPurpose | "logs";

/** AWS managed CloudFront policies (stable ids, the same in every account). */
const CACHING_OPTIMIZED_POLICY = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const SECURITY_HEADERS_POLICY = "67f7725c-6f97-4210-82d7-5512b31e9d03";
/** The hosted zone every CloudFront distribution's alias target lives in. */
const CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2";

export interface StorageArgs {
  /** The platform's keys: `storage` encrypts every bucket but the log bucket, and the signing-key secret. */
  keys: Pick<Keys, "keys">;
  /** Public Route53 zone holding the media record and the certificate's validation record. */
  zoneName: string;
  /** CloudFront's host name for signed report and image URLs, e.g. `media.ndt.example.com`. */
  mediaHost: string;
  /**
   * Days an overwritten or deleted object version is kept, then expires. Versioning is for undoing mistakes, not
   * an archive.
   */
  noncurrentVersionDays: number;
  /** Days a generated report lives: reports are made again from the database on demand. */
  reportsExpireDays: number;
  /**
   * S3 server access logs for every bucket and CloudFront standard logs, to a dedicated log bucket (A11, A12).
   * @default false — off, there is no log bucket (dev); prod turns it on in Pulumi.prod.yaml
   */
  accessLogging?: boolean;
  /**
   * A WAFv2 web ACL (AWS managed rule groups and a per-IP rate limit) in front of CloudFront (A12).
   * @default false — about $10/month before requests; prod turns it on
   */
  waf?: boolean;
  /**
   * Requests one IP may make in 5 minutes before WAF blocks it. Signed media URLs are fetched once per page view.
   * @default 2000
   */
  rateLimitPer5Minutes?: number;
  /**
   * Days access logs are kept in the log bucket.
   * @default 365 — a year of evidence for an incident review
   */
  logRetentionDays?: number;
  /**
   * CloudFront edge locations served.
   * @default "PriceClass_100" — North America and Europe, where the platform's users are
   */
  priceClass?: "PriceClass_100" | "PriceClass_200" | "PriceClass_All";
  /**
   * Prefix of the globally unique bucket names; the account id is appended.
   * @default `ndt-${stack}`
   */
  bucketNamePrefix?: string;
  /** Adjust a child's args before it is built (STYLE.md rule 7). `bucket` receives every bucket, with its purpose. */
  transform?: {
    bucket?: (args: aws.s3.BucketArgs, purpose: AnyBucket) => void;
    lifecycle?: (args: aws.s3.BucketLifecycleConfigurationArgs, purpose: AnyBucket) => void;
    distribution?: Transform<aws.cloudfront.DistributionArgs>;
    webAcl?: Transform<aws.wafv2.WebAclArgs>;
  };
}

/** What a service needs to sign media URLs: the key pair id and where its private key lives. */
export interface MediaSigning {
  /** CloudFront public key id (the `Key-Pair-Id` of a signed URL). */
  keyPairId: pulumi.Output<string>;
  /** Secrets Manager secret holding `{"keyPairId": "...", "privateKeyPem": "..."}`. */
  privateKeySecretArn: pulumi.Output<string>;
}

/**
 * The platform's S3 buckets — uploads, reports, models, and (with access logging) a log bucket — each private
 * (all four public-access blocks, bucket-owner-enforced), versioned, SSE-KMS with the storage key, TLS-only and under
 * lifecycle rules. CloudFront serves the reports bucket as `mediaHost` through origin access control, HTTPS only with
 * TLS ≥ 1.2_2021 and an ACM certificate, and only to signed URLs (a key group whose private key Pulumi generates and
 * keeps only in Secrets Manager and encrypted state). Prod adds WAFv2 and access logs for buckets and CloudFront.
 *
 * Services get least-privilege access through grants: `storage.grantReadWrite("uploads", role, "org-1/")`.
 *
 * Cost: S3 at $0.023/GB-month plus requests; CloudFront $0.085/GB out. dev: a few GB, ~$2/month plus $0.40 for the
 * signing-key secret. prod: storage by volume (~$25 per TB-month), WAF ~$10/month + $0.60 per million requests, log
 * storage ~$1–5/month.
 */
export class Storage extends pulumi.ComponentResource {
  /** Typed connections for the Kubernetes services (STYLE.md rule 6). */
  readonly buckets: Record<BucketPurpose, BucketConnection>;
  /** The media host name CloudFront answers on. */
  readonly mediaDomain: string;
  readonly distributionId: pulumi.Output<string>;
  readonly signing: MediaSigning;
  /** The log bucket's name when access logging is on. */
  readonly logBucketName?: pulumi.Output<string>;
  private readonly componentName: string;
  private readonly storageKeyArn: pulumi.Output<string>;
  private readonly grantNames = new Set<string>();

  constructor(name: string, args: StorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Storage", name, {}, opts);
    this.componentName = name;
    const parent = this;
    const settings = normalize();
    const storageKeyArn = args.keys.keys.storage.arn;
    this.storageKeyArn = storageKeyArn;
    const account = aws.getCallerIdentityOutput({}, { parent }).accountId;
    // The default provider's region, where the buckets live; connections carry it as a plain setting.
    const region = aws.config.region ?? "";
    // CloudFront takes certificates and web ACLs from us-east-1 only.
    const usEast1 = new aws.Provider(`${name}-us-east-1`, { region: "us-east-1" }, { parent });

    const logs = settings.accessLogging ? createBucket("logs") : undefined;
    const uploads = createBucket("uploads");
    const reports = createBucket("reports");
    const models = createBucket("models");
    const sources = { uploads, reports, models };
    if (logs) allowServerAccessLogs(logs, Object.values(sources));

    const zone = aws.route53.getZoneOutput({ name: args.zoneName, privateZone: false }, { parent });
    const certificate = createCertificate();
    const signing = createSigningKey();
    const webAcl = settings.waf ? createWebAcl() : undefined;
    const distribution = createDistribution();
    allowDistributionToRead(distribution);
    createDnsRecords(distribution);
    denyInsecureTransport(uploads);
    denyInsecureTransport(models);

    this.buckets = {
      uploads: connectionOf(uploads.bucket),
      reports: connectionOf(reports.bucket),
      models: connectionOf(models.bucket),
    };
    this.mediaDomain = args.mediaHost;
    this.distributionId = distribution.id;
    this.signing = { keyPairId: signing.keyPairId, privateKeySecretArn: signing.privateKeySecretArn };
    this.logBucketName = logs?.bucket.bucket;
    this.registerOutputs({
      buckets: Object.fromEntries(Object.entries(this.buckets).map(([purpose, bucket]) => [purpose, bucket.name])),
      mediaDomain: this.mediaDomain,
      keyPairId: signing.keyPairId,
    });

    function normalize() {
      return {
        accessLogging: args.accessLogging ?? false,
        waf: args.waf ?? false,
        rateLimit: args.rateLimitPer5Minutes ?? 2000,
        logRetentionDays: args.logRetentionDays ?? 365,
        priceClass: args.priceClass ?? "PriceClass_100",
        bucketNamePrefix: args.bucketNamePrefix ?? `ndt-${pulumi.getStack()}`,
      };
    }

    interface CreatedBucket {
      purpose: AnyBucket;
      bucket: aws.s3.Bucket;
      publicAccessBlock: aws.s3.BucketPublicAccessBlock;
      /** Statements beyond the TLS-only deny that this bucket's single policy must carry. */
      extraStatements: pulumi.Input<object>[];
    }

    function createBucket(purpose: AnyBucket): CreatedBucket {
      const bucket = new aws.s3.Bucket(
        `${name}-${purpose}`,
        applyTransform<aws.s3.BucketArgs>(
          {
            bucket: pulumi.interpolate`${settings.bucketNamePrefix}-${purpose}-${account}`,
            forceDestroy: false,
            tags: { "ndt.io/purpose": purpose },
          },
          args.transform?.bucket && ((bucketArgs) => args.transform?.bucket?.(bucketArgs, purpose)),
        ),
        { parent },
      );
      // Companions take the bucket's name (its id in AWS), so the plan links them to the bucket by value.
      const target = bucket.bucket;
      const publicAccessBlock = new aws.s3.BucketPublicAccessBlock(
        `${name}-${purpose}`,
        {
          bucket: target,
          blockPublicAcls: true,
          blockPublicPolicy: true,
          ignorePublicAcls: true,
          restrictPublicBuckets: true,
        },
        { parent },
      );
      new aws.s3.BucketOwnershipControls(
        `${name}-${purpose}`,
        {
          bucket: target,
          // CloudFront standard logging (the legacy S3 delivery) writes through an ACL grant to the awslogsdelivery
          // account, so the log bucket keeps ACLs; every other bucket disables them.
          rule: { objectOwnership: purpose === "logs" ? "BucketOwnerPreferred" : "BucketOwnerEnforced" },
        },
        { parent },
      );
      new aws.s3.BucketVersioning(
        `${name}-${purpose}`,
        { bucket: target, versioningConfiguration: { status: "Enabled" } },
        { parent },
      );
      new aws.s3.BucketServerSideEncryptionConfiguration(
        `${name}-${purpose}`,
        {
          bucket: target,
          rules: [
            purpose === "logs"
              ? // S3 server access logging delivers only to buckets whose default encryption is SSE-S3; logs
                // hold request metadata, never object contents.
                { applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }
              : {
                  applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: storageKeyArn },
                  // One data key per bucket instead of a KMS call per object: ~99% fewer KMS requests.
                  bucketKeyEnabled: true,
                },
          ],
        },
        { parent },
      );
      new aws.s3.BucketLifecycleConfiguration(
        `${name}-${purpose}`,
        applyTransform<aws.s3.BucketLifecycleConfigurationArgs>(
          { bucket: target, rules: lifecycleRules(purpose) },
          args.transform?.lifecycle && ((lifecycleArgs) => args.transform?.lifecycle?.(lifecycleArgs, purpose)),
        ),
        { parent },
      );
      if (purpose !== "logs" && logs) {
        new aws.s3.BucketLogging(
          `${name}-${purpose}`,
          { bucket: target, targetBucket: logs.bucket.bucket, targetPrefix: `s3/${purpose}/` },
          { parent, dependsOn: [logs.bucket] },
        );
      }
      return { purpose, bucket, publicAccessBlock, extraStatements: [] };
    }

    function lifecycleRules(purpose: AnyBucket): aws.types.input.s3.BucketLifecycleConfigurationRule[] {
      const expireDays =
        purpose === "reports" ? args.reportsExpireDays : purpose === "logs" ? settings.logRetentionDays : 0;
      return [
        {
          id: "expire-noncurrent-versions",
          status: "Enabled",
          filter: { prefix: "" },
          noncurrentVersionExpiration: { noncurrentDays: args.noncurrentVersionDays },
        },
        {
          id: "abort-incomplete-multipart-uploads",
          status: "Enabled",
          filter: { prefix: "" },
          abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
        },
        ...(expireDays > 0
          ? [{ id: `expire-${purpose}`, status: "Enabled", filter: { prefix: "" }, expiration: { days: expireDays } }]
          : []),
      ];
    }

    /** A bucket has one policy: the TLS-only deny plus whatever else the bucket's readers need. */
    function bucketPolicy(created: CreatedBucket, dependsOn: pulumi.Resource[] = []): aws.s3.BucketPolicy {
      const arn = created.bucket.arn;
      return new aws.s3.BucketPolicy(
        `${name}-${created.purpose}`,
        {
          bucket: created.bucket.bucket,
          policy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "DenyInsecureTransport",
                Effect: "Deny",
                Principal: "*",
                Action: "s3:*",
                Resource: [arn, pulumi.interpolate`${arn}/*`],
                Condition: { Bool: { "aws:SecureTransport": "false" } },
              },
              ...created.extraStatements,
            ],
          }),
        },
        { parent, dependsOn: [created.publicAccessBlock, ...dependsOn] },
      );
    }

    function denyInsecureTransport(created: CreatedBucket): aws.s3.BucketPolicy {
      return bucketPolicy(created);
    }

    function allowServerAccessLogs(target: CreatedBucket, from: CreatedBucket[]): aws.s3.BucketPolicy {
      target.extraStatements.push({
        Sid: "S3ServerAccessLogs",
        Effect: "Allow",
        Principal: { Service: "logging.s3.amazonaws.com" },
        Action: "s3:PutObject",
        Resource: pulumi.interpolate`${target.bucket.arn}/s3/*`,
        Condition: {
          StringEquals: { "aws:SourceAccount": account },
          ArnLike: { "aws:SourceArn": from.map((source) => source.bucket.arn) },
        },
      });
      return bucketPolicy(target);
    }

    function createCertificate(): aws.acm.CertificateValidation {
      const certificate = new aws.acm.Certificate(
        `${name}-media`,
        { domainName: args.mediaHost, validationMethod: "DNS", keyAlgorithm: "EC_prime256v1" },
        { parent, provider: usEast1 },
      );
      // One name on the certificate, so one validation record.
      const option = certificate.domainValidationOptions.apply((options) => options[0]);
      const record = new aws.route53.Record(
        `${name}-media-validation`,
        {
          zoneId: zone.zoneId,
          name: option.apply((o) => o?.resourceRecordName ?? ""),
          type: option.apply((o) => o?.resourceRecordType ?? "CNAME"),
          records: [option.apply((o) => o?.resourceRecordValue ?? "")],
          ttl: 300,
          allowOverwrite: true,
        },
        { parent },
      );
      return new aws.acm.CertificateValidation(
        `${name}-media`,
        { certificateArn: certificate.arn, validationRecordFqdns: [record.fqdn] },
        { parent, provider: usEast1 },
      );
    }

    /**
     * The signing key pair for signed URLs. Generated by Pulumi (@pulumi/tls) rather than read from config: the private
     * half is never typed, pasted or committed; it exists only as a Pulumi secret in encrypted state and in Secrets
     * Manager, where the reports service reads it. Rotating is replacing the PrivateKey resource.
     */
    function createSigningKey(): MediaSigning & { keyGroupId: pulumi.Output<string> } {
      // CloudFront signed URLs take RSA 2048 keys only.
      const privateKey = new tls.PrivateKey(`${name}-media-signing`, { algorithm: "RSA", rsaBits: 2048 }, { parent });
      const publicKey = new aws.cloudfront.PublicKey(
        `${name}-media-signing`,
        { comment: `ndt ${pulumi.getStack()} media URL signing`, encodedKey: privateKey.publicKeyPem },
        { parent },
      );
      const keyGroup = new aws.cloudfront.KeyGroup(
        `${name}-media-signers`,
        { comment: "Keys allowed to sign media URLs", items: [publicKey.id] },
        { parent },
      );
      const secret = new aws.secretsmanager.Secret(
        `${name}-media-signing-key`,
        {
          description: "CloudFront media URL signing key: {keyPairId, privateKeyPem}",
          kmsKeyId: storageKeyArn,
          recoveryWindowInDays: 30,
        },
        { parent },
      );
      new aws.secretsmanager.SecretVersion(
        `${name}-media-signing-key`,
        {
          secretId: secret.id,
          // Marked secret here too, whatever the provider's own marking: the PEM must never reach the plan in clear.
          secretString: pulumi.secret(
            pulumi.jsonStringify({ keyPairId: publicKey.id, privateKeyPem: privateKey.privateKeyPem }),
          ),
        },
        { parent },
      );
      return { keyPairId: publicKey.id, privateKeySecretArn: secret.arn, keyGroupId: keyGroup.id };
    }

    function createWebAcl(): aws.wafv2.WebAcl {
      const visibility = (metricName: string) => ({
        cloudwatchMetricsEnabled: true,
        sampledRequestsEnabled: true,
        metricName,
      });
      const managed = (ruleGroup: string, priority: number) => ({
        name: ruleGroup,
        priority,
        overrideAction: { none: {} },
        statement: { managedRuleGroupStatement: { vendorName: "AWS", name: ruleGroup } },
        visibilityConfig: visibility(ruleGroup),
      });
      return new aws.wafv2.WebAcl(
        `${name}-media`,
        applyTransform<aws.wafv2.WebAclArgs>(
          {
            description: `ndt ${pulumi.getStack()} media distribution`,
            scope: "CLOUDFRONT",
            defaultAction: { allow: {} },
            rules: [
              managed("AWSManagedRulesAmazonIpReputationList", 0),
              managed("AWSManagedRulesCommonRuleSet", 1),
              managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
              {
                name: "rate-limit-per-ip",
                priority: 3,
                action: { block: {} },
                statement: { rateBasedStatement: { limit: settings.rateLimit, aggregateKeyType: "IP" } },
                visibilityConfig: visibility("rate-limit-per-ip"),
              },
            ],
            visibilityConfig: visibility(`${name}-media`),
          },
          args.transform?.webAcl,
        ),
        { parent, provider: usEast1 },
      );
    }

    function createDistribution(): aws.cloudfront.Distribution {
      const originAccess = new aws.cloudfront.OriginAccessControl(
        `${name}-media`,
        {
          description: "CloudFront reads the reports bucket, signing every request",
          originAccessControlOriginType: "s3",
          signingBehavior: "always",
          signingProtocol: "sigv4",
        },
        { parent },
      );
      return new aws.cloudfront.Distribution(
        `${name}-media`,
        applyTransform<aws.cloudfront.DistributionArgs>(
          {
            enabled: true,
            comment: `ndt ${pulumi.getStack()} media: signed report and image URLs`,
            aliases: [args.mediaHost],
            httpVersion: "http2and3",
            isIpv6Enabled: true,
            priceClass: settings.priceClass,
            origins: [
              {
                originId: "media",
                domainName: reports.bucket.bucketRegionalDomainName,
                originAccessControlId: originAccess.id,
              },
            ],
            defaultCacheBehavior: {
              targetOriginId: "media",
              viewerProtocolPolicy: "redirect-to-https",
              allowedMethods: ["GET", "HEAD"],
              cachedMethods: ["GET", "HEAD"],
              compress: true,
              cachePolicyId: CACHING_OPTIMIZED_POLICY,
              responseHeadersPolicyId: SECURITY_HEADERS_POLICY,
              // Only URLs signed with the key group's key are served: reports never leak by guessable URL.
              trustedKeyGroups: [signing.keyGroupId],
            },
            restrictions: { geoRestriction: { restrictionType: "none" } },
            viewerCertificate: {
              acmCertificateArn: certificate.certificateArn,
              sslSupportMethod: "sni-only",
              minimumProtocolVersion: "TLSv1.2_2021",
            },
            ...(webAcl ? { webAclId: webAcl.arn } : {}),
            ...(logs
              ? {
                  loggingConfig: { bucket: logs.bucket.bucketDomainName, prefix: "cloudfront/", includeCookies: false },
                }
              : {}),
          },
          args.transform?.distribution,
        ),
        { parent },
      );
    }

    function allowDistributionToRead(distribution: aws.cloudfront.Distribution): aws.s3.BucketPolicy {
      reports.extraStatements.push({
        Sid: "CloudFrontReadsThroughOac",
        Effect: "Allow",
        Principal: { Service: "cloudfront.amazonaws.com" },
        Action: "s3:GetObject",
        Resource: pulumi.interpolate`${reports.bucket.arn}/*`,
        Condition: { StringEquals: { "AWS:SourceArn": distribution.arn } },
      });
      return bucketPolicy(reports);
    }

    function createDnsRecords(distribution: aws.cloudfront.Distribution): void {
      for (const type of ["A", "AAAA"] as const) {
        new aws.route53.Record(
          `${name}-media-${type.toLowerCase()}`,
          {
            zoneId: zone.zoneId,
            name: args.mediaHost,
            type,
            aliases: [{ name: distribution.domainName, zoneId: CLOUDFRONT_ZONE_ID, evaluateTargetHealth: false }],
          },
          { parent },
        );
      }
    }

    function connectionOf(bucket: aws.s3.Bucket): BucketConnection {
      return { name: bucket.bucket, arn: bucket.arn, region };
    }
  }

  /**
   * Lets an IRSA role read, write and delete objects under `prefix` of one bucket, and use the storage key to do so
   * (A14). Returns the inline policy it attaches.
   * @example storage.grantReadWrite("uploads", cluster.serviceAccountRole("files", "ndt", "files"), "uploads/")
   */
  grantReadWrite(bucket: BucketPurpose, role: aws.iam.Role, prefix: string): aws.iam.RolePolicy {
    return this.grant("readwrite", bucket, role, prefix);
  }

  /**
   * Uploads a file of this repository as one object (the released detector model): replaced when the file's
   * content changes, encrypted by the bucket's default (the storage key).
   */
  publishFile(bucket: BucketPurpose, key: string, path: string, contentType: string): aws.s3.BucketObjectv2 {
    return new aws.s3.BucketObjectv2(
      `${this.componentName}-${bucket}-${slug(key)}`,
      { bucket: this.buckets[bucket].name, key, source: new pulumi.asset.FileAsset(path), contentType },
      { parent: this },
    );
  }

  /** Lets an IRSA role read objects under `prefix` of one bucket (A14). Returns the inline policy it attaches. */
  grantRead(bucket: BucketPurpose, role: aws.iam.Role, prefix: string): aws.iam.RolePolicy {
    return this.grant("read", bucket, role, prefix);
  }

  private grant(access: "read" | "readwrite", bucket: BucketPurpose, role: aws.iam.Role, prefix: string) {
    const scope = normalizePrefix(prefix);
    const roleName = logicalNameOf(role);
    const policyName = `${this.componentName}-${bucket}-${access}-${roleName}-${slug(scope)}`;
    if (this.grantNames.has(policyName)) throw new Error(`storage: ${policyName} is granted twice`);
    this.grantNames.add(policyName);
    const bucketArn = this.buckets[bucket].arn;
    const objectActions =
      access === "read"
        ? ["s3:GetObject", "s3:GetObjectVersion"]
        : ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"];
    return new aws.iam.RolePolicy(
      policyName,
      {
        role: role.name,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "ListUnderPrefix",
              Effect: "Allow",
              Action: "s3:ListBucket",
              Resource: bucketArn,
              Condition: { StringLike: { "s3:prefix": [`${scope}*`] } },
            },
            {
              Sid: "ObjectsUnderPrefix",
              Effect: "Allow",
              Action: objectActions,
              Resource: pulumi.interpolate`${bucketArn}/${scope}*`,
            },
            {
              Sid: "StorageKeyThroughS3",
              Effect: "Allow",
              Action: access === "read" ? ["kms:Decrypt"] : ["kms:Decrypt", "kms:GenerateDataKey"],
              Resource: this.storageKeyArn,
              Condition: { StringEquals: { "kms:ViaService": `s3.${this.buckets[bucket].region}.amazonaws.com` } },
            },
          ],
        }),
      },
      { parent: this },
    );
  }
}

/**
 * `"org-1/"` and `"org-1/*"` both mean the objects under org-1/. An empty prefix or a wildcard inside it would widen
 * the grant to the whole bucket or to other prefixes, so both are refused.
 */
export function normalizePrefix(prefix: string): string {
  const scope = prefix.endsWith("*") ? prefix.slice(0, -1) : prefix;
  const problems: string[] = [];
  if (scope.length === 0) problems.push("is empty: a grant covers one prefix, never the whole bucket");
  if (/[*?]/.test(scope)) problems.push("has a wildcard before its end");
  if (scope.startsWith("/")) problems.push('starts with "/": S3 keys have no leading slash');
  if (problems.length > 0) throw new Error(`storage grant prefix ${JSON.stringify(prefix)} ${problems.join("; ")}`);
  return scope;
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}
