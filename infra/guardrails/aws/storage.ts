import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { mockIdOf } from "../../../stacks/plan/mocks.js";
import {
  asArray,
  asList,
  at,
  findingsFor,
  type Guardrail,
  hasPasswordInUrl,
  inputAt,
  isCredentialKey,
  ofType,
  type PolicyStatement,
  parsePolicy,
  stackKey,
  statementsOf,
  wildcardMatches,
} from "../guardrail.js";

const BUCKET = "aws:s3/bucket:Bucket";
const PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock";
const VERSIONING = "aws:s3/bucketVersioning:BucketVersioning";
const ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration";
const BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy";
const LOGGING = "aws:s3/bucketLogging:BucketLogging";
const DISTRIBUTION = "aws:cloudfront/distribution:Distribution";
const ORIGIN_ACCESS_CONTROL = "aws:cloudfront/originAccessControl:OriginAccessControl";
const ROLE = "aws:iam/role:Role";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
const POLICY = "aws:iam/policy:Policy";
/** Attachments of a managed policy, with the input naming the roles each attaches it to. */
const POLICY_ATTACHMENTS: [type: string, rolesInput: string | undefined][] = [
  ["aws:iam/rolePolicyAttachment:RolePolicyAttachment", "role"],
  ["aws:iam/policyAttachment:PolicyAttachment", "roles"],
  ["aws:iam/userPolicyAttachment:UserPolicyAttachment", undefined],
  ["aws:iam/groupPolicyAttachment:GroupPolicyAttachment", undefined],
];
const KMS_KEY = "aws:kms/key:Key";
const REPOSITORY = "aws:ecr/repository:Repository";
const LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy";

const PUBLIC_ACCESS_FLAGS = ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"];
/** CloudFront security policies at or above TLSv1.2_2021 (CKV_AWS_174). */
export const MODERN_TLS_POLICIES = ["TLSv1.2_2021", "TLSv1.2_2025", "TLSv1.3_2025"];

/**
 * The bucket a companion resource (`bucket` input) configures. Companions name their bucket by its name, which is
 * its id in AWS; under the plan's mocks an id reads `<logical name>-id`, so both spellings are accepted.
 */
function companionsOf(plan: PlanDocument, type: string, bucket: PlanResource): PlanResource[] {
  const names = new Set([inputAt(bucket, "bucket"), `${bucket.name}-id`].filter((name) => typeof name === "string"));
  return ofType(plan, type).filter((companion) => names.has(inputAt(companion, "bucket") as string));
}

function bucketNameOf(bucket: PlanResource): string {
  const name = inputAt(bucket, "bucket");
  return typeof name === "string" ? name : `${bucket.name}-id`;
}

/** The name in a bucket's ARN: its `bucket` input, else the name the provider gives it (the logical name, in a plan). */
function bucketArnNameOf(bucket: PlanResource): string {
  const name = inputAt(bucket, "bucket");
  return typeof name === "string" ? name : bucket.name;
}

/**
 * Buckets that receive access logs (S3 server access logs or CloudFront standard logs). S3 delivers server access
 * logs only to SSE-S3 buckets, and a log bucket logging to itself would loop, so these two A11 points differ for them.
 */
function logTargetNames(plan: PlanDocument): Set<string> {
  const targets = new Set<string>();
  for (const logging of ofType(plan, LOGGING)) {
    const target = inputAt(logging, "targetBucket");
    if (typeof target === "string") targets.add(target);
  }
  for (const distribution of ofType(plan, DISTRIBUTION)) {
    const domain = inputAt(distribution, "loggingConfig.bucket");
    if (typeof domain === "string") targets.add(domain.replace(/\.s3(\.[a-z0-9-]+)?\.amazonaws\.com$/, ""));
  }
  return targets;
}

/** `"*"` or `{"AWS": "*"}`: anyone, signed or not. */
function isAnyone(principal: unknown): boolean {
  if (principal === "*") return true;
  if (principal && typeof principal === "object" && !Array.isArray(principal)) {
    return asList((principal as Record<string, string | string[]>).AWS).includes("*");
  }
  return false;
}

function deniesInsecureTransport(statement: PolicyStatement): boolean {
  const actions = asList(statement.Action);
  return (
    statement.Effect === "Deny" &&
    isAnyone(statement.Principal) &&
    (actions.includes("s3:*") || actions.includes("*")) &&
    String(statement.Condition?.Bool?.["aws:SecureTransport"]) === "false"
  );
}

export const a11Buckets: Guardrail = {
  id: "A11",
  title:
    "S3: all four public-access blocks, versioning, SSE-KMS, TLS-only bucket policy, access logging (prod), no * principal",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A11");
    const logTargets = logTargetNames(plan);
    for (const bucket of ofType(plan, BUCKET)) {
      const isLogTarget = logTargets.has(bucketNameOf(bucket));

      const blocks = companionsOf(plan, PUBLIC_ACCESS_BLOCK, bucket);
      if (blocks.length === 0) fail(bucket, "no public access block");
      for (const block of blocks) {
        const off = PUBLIC_ACCESS_FLAGS.filter((flag) => inputAt(block, flag) !== true);
        if (off.length > 0) fail(bucket, `public access block flags off: ${off.join(", ")}`);
      }

      const versioned = companionsOf(plan, VERSIONING, bucket).some(
        (versioning) => inputAt(versioning, "versioningConfiguration.status") === "Enabled",
      );
      if (!versioned) fail(bucket, "versioning is not enabled");

      const rules = companionsOf(plan, ENCRYPTION, bucket).flatMap((sse) => asArray(inputAt(sse, "rules")));
      const algorithms = rules.map((rule) => at(rule, "applyServerSideEncryptionByDefault.sseAlgorithm"));
      const keyed = rules.some(
        (rule) =>
          String(at(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")).startsWith("aws:kms") &&
          typeof at(rule, "applyServerSideEncryptionByDefault.kmsMasterKeyId") === "string",
      );
      if (isLogTarget) {
        if (!algorithms.includes("AES256") && !keyed) fail(bucket, "log bucket has no default encryption");
      } else if (!keyed) {
        fail(bucket, "default encryption is not SSE-KMS with a customer-managed key");
      }

      const statements = companionsOf(plan, BUCKET_POLICY, bucket).flatMap((policy) =>
        statementsOf(parsePolicy(inputAt(policy, "policy"))),
      );
      const tlsDenials = statements.filter(deniesInsecureTransport);
      if (tlsDenials.length === 0) fail(bucket, "no bucket policy statement denies non-TLS requests");
      else {
        // A deny on the bucket alone leaves object reads and writes open to plain HTTP, and the other way round.
        const denied = tlsDenials.flatMap((statement) => asList(statement.Resource));
        const bucketArn = `arn:aws:s3:::${bucketArnNameOf(bucket)}`;
        for (const target of [bucketArn, `${bucketArn}/*`]) {
          if (!denied.some((pattern) => wildcardMatches(pattern, target)))
            fail(bucket, `the bucket policy's deny of non-TLS requests does not cover ${target}`);
        }
      }
      for (const statement of statements) {
        if (statement.Effect === "Allow" && isAnyone(statement.Principal))
          fail(bucket, `bucket policy allows principal * (${statement.Sid ?? "unnamed statement"})`);
      }

      if (environment === "prod" && !isLogTarget && companionsOf(plan, LOGGING, bucket).length === 0)
        fail(bucket, "server access logging is off");
    }
    return findings;
  },
};

export const a12Cdn: Guardrail = {
  id: "A12",
  title:
    "CloudFront: HTTPS only, TLS ≥ 1.2_2021 with a custom certificate (prod), OAC on S3 origins, WAFv2 and logging (prod)",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A12");
    const prod = environment === "prod";
    for (const distribution of ofType(plan, DISTRIBUTION)) {
      const behaviors = [
        inputAt(distribution, "defaultCacheBehavior"),
        ...asArray(inputAt(distribution, "orderedCacheBehaviors")),
      ];
      for (const behavior of behaviors) {
        const policy = at(behavior, "viewerProtocolPolicy");
        if (policy !== "redirect-to-https" && policy !== "https-only")
          fail(distribution, `viewer protocol policy ${String(policy)} lets viewers use HTTP`);
      }

      const customCertificate =
        typeof inputAt(distribution, "viewerCertificate.acmCertificateArn") === "string" &&
        inputAt(distribution, "viewerCertificate.cloudfrontDefaultCertificate") !== true;
      if (prod && !customCertificate) fail(distribution, "no custom ACM certificate");
      const minimum = inputAt(distribution, "viewerCertificate.minimumProtocolVersion");
      if (customCertificate && !MODERN_TLS_POLICIES.includes(String(minimum)))
        fail(distribution, `minimum protocol ${String(minimum)} is older than TLSv1.2_2021`);

      for (const origin of asArray(inputAt(distribution, "origins"))) {
        const domain = String(at(origin, "domainName") ?? "");
        if (!/\.s3[.-]([a-z0-9-]+\.)?amazonaws\.com$/.test(domain)) continue;
        if (typeof at(origin, "originAccessControlId") !== "string")
          fail(distribution, `S3 origin ${domain} has no origin access control`);
        if (at(origin, "s3OriginConfig.originAccessIdentity"))
          fail(distribution, `S3 origin ${domain} uses a legacy origin access identity`);
      }

      if (prod && typeof inputAt(distribution, "webAclId") !== "string") fail(distribution, "no WAFv2 web ACL");
      if (prod && typeof inputAt(distribution, "loggingConfig.bucket") !== "string")
        fail(distribution, "standard logging is off");
    }
    for (const control of ofType(plan, ORIGIN_ACCESS_CONTROL)) {
      if (inputAt(control, "signingBehavior") !== "always" || inputAt(control, "signingProtocol") !== "sigv4")
        fail(control, "origin access control does not sign every request with SigV4");
    }
    return findings;
  },
};

/** Inline and managed IAM policy documents in the plan, with the resource that carries each. */
function iamPolicies(plan: PlanDocument): [PlanResource, PlanValue | undefined][] {
  return [
    ...ofType(plan, ROLE_POLICY).map((policy) => [policy, inputAt(policy, "policy")] as [PlanResource, PlanValue]),
    ...ofType(plan, POLICY).map((policy) => [policy, inputAt(policy, "policy")] as [PlanResource, PlanValue]),
    ...ofType(plan, ROLE).flatMap((role) =>
      asArray(inputAt(role, "inlinePolicies")).map(
        (inline) => [role, at(inline, "policy")] as [PlanResource, PlanValue],
      ),
    ),
  ];
}

/**
 * AWS-managed policies that grant `*`, or every action of a service, on every resource: administrator, power-user and
 * whole-account read-only access, the administrator job functions, and every `...FullAccess` policy. The plan holds only
 * their ARNs (their documents live in AWS), so they are known by name.
 */
const BROAD_MANAGED_POLICY =
  /^(?:[\w+=,.@-]+\/)*(?:AdministratorAccess[\w-]*|PowerUserAccess|ReadOnlyAccess|[\w-]*FullAccess[\w-]*|SystemAdministrator|NetworkAdministrator|DatabaseAdministrator|DataScientist)$/;
/** AWS-managed policies that grant S3 on every bucket (AmazonS3ReadOnlyAccess, AmazonS3FullAccess...). */
const S3_MANAGED_POLICY = /S3/;

/** `"AdministratorAccess"` from `arn:aws:iam::aws:policy/AdministratorAccess`; undefined for a customer's policy. */
function awsManagedPolicyName(arn: PlanValue | undefined): string | undefined {
  const match = typeof arn === "string" ? /^arn:aws[a-z-]*:iam::aws:policy\/(.+)$/.exec(arn) : null;
  return match?.[1];
}

/** A managed policy attached to a role (or user, group): the resource that attaches it, the ARN and the roles. */
interface Attachment {
  resource: PlanResource;
  policyArn: PlanValue | undefined;
  roles: PlanValue[];
}

function attachmentsOf(plan: PlanDocument): Attachment[] {
  return [
    ...POLICY_ATTACHMENTS.flatMap(([type, rolesInput]) =>
      ofType(plan, type).map((attachment) => {
        const roles = rolesInput === undefined ? undefined : inputAt(attachment, rolesInput);
        return {
          resource: attachment,
          policyArn: inputAt(attachment, "policyArn"),
          roles: Array.isArray(roles) ? roles : roles === undefined ? [] : [roles],
        };
      }),
    ),
    ...ofType(plan, ROLE).flatMap((role) =>
      asArray(inputAt(role, "managedPolicyArns")).map((policyArn) => ({
        resource: role,
        policyArn,
        roles: [role.name],
      })),
    ),
  ];
}

/** Whether a reference (name, id or ARN, as inputs give it) names this role or customer-managed policy. */
function refersTo(value: PlanValue | undefined, target: PlanResource, arnType: "role" | "policy"): boolean {
  if (typeof value !== "string") return false;
  const name = typeof target.inputs.name === "string" ? target.inputs.name : target.name;
  return (
    value === target.name ||
    value === name ||
    value === mockIdOf(target.name) ||
    (value.startsWith("arn:") && value.includes(`:${arnType}/`) && value.endsWith(`/${name}`))
  );
}

/** An action pattern that grants every action of every service: `*`, `*:*`. */
const isEveryAction = (action: string): boolean => /^\*(:\*)?$/.test(action);
/** An action pattern that grants every action of one service: `s3:*`, `iam:*`. */
const isServiceWide = (action: string): boolean => /^[\w-]+:\*$/.test(action);
/** `*`, or an ARN whose resource part is nothing but wildcards (`arn:aws:s3:::*`, `arn:aws:s3:::*\/*`). */
const isEveryResource = (resource: string): boolean =>
  resource === "*" || /^arn:[^:]*:[^:]*:[^:]*:[^:]*:[*?/:]+$/.test(resource);

function statementProblems(statement: PolicyStatement): string[] {
  const name = `statement ${statement.Sid ?? "(unnamed)"}`;
  const problems: string[] = [];
  if (statement.NotAction !== undefined) problems.push(`${name} allows with NotAction: everything but what it names`);
  if (statement.NotResource !== undefined)
    problems.push(`${name} allows with NotResource: everything but what it names`);
  const everywhere = asList(statement.Resource).find(isEveryResource);
  if (everywhere === undefined) return problems;
  const actions = asList(statement.Action);
  if (actions.some(isEveryAction)) problems.push(`${name} allows * actions on * resources`);
  else {
    const serviceWide = actions.find(isServiceWide);
    if (serviceWide) problems.push(`${name} allows ${serviceWide} on every resource (${everywhere})`);
  }
  return problems;
}

/** Whether an action pattern can grant an S3 action (`s3:GetObject`, `s3:*`, `*`, `s*:*`). */
function touchesS3(action: string): boolean {
  const service = action.includes(":") ? action.slice(0, action.indexOf(":")) : action;
  return wildcardMatches(service, "s3", true);
}

/** Whether a resource pattern can name an S3 bucket or object (`*`, `arn:aws:s3:::...`, `arn:*:*:...`). */
function appliesToS3(resource: string): boolean {
  if (!resource.startsWith("arn:")) return true;
  return wildcardMatches(resource.split(":")[2] ?? "", "s3");
}

/** `arn:aws:s3:::<bucket>` or `arn:aws:s3:::<bucket>/<key pattern>` naming one bucket of the plan, no wildcard in its name. */
function namesPlatformBucket(resource: string, buckets: Set<string>): boolean {
  const match = /^arn:aws[a-z-]*:s3:::([^/]+)(\/.*)?$/.exec(resource);
  const bucket = match?.[1];
  return bucket !== undefined && !/[*?]/.test(bucket) && buckets.has(bucket);
}

/** Roles that pods assume through the cluster's OIDC provider (IRSA). */
function isIrsaRole(role: PlanResource): boolean {
  return statementsOf(parsePolicy(inputAt(role, "assumeRolePolicy"))).some(
    (statement) =>
      asList(statement.Action).includes("sts:AssumeRoleWithWebIdentity") &&
      ((statement.Principal as { Federated?: string } | undefined)?.Federated ?? "").includes(":oidc-provider/"),
  );
}

export const a14Iam: Guardrail = {
  id: "A14",
  title:
    "IAM: no * or service-wide actions on * resources, no Not* allows, no broad AWS-managed policies; IRSA roles trust one service account and reach only the platform's named buckets",
  check({ plan }) {
    const { findings, fail } = findingsFor("A14");
    for (const [resource, document] of iamPolicies(plan)) {
      for (const statement of statementsOf(parsePolicy(document))) {
        if (statement.Effect !== "Allow") continue;
        for (const problem of statementProblems(statement)) fail(resource, problem);
      }
    }
    const attachments = attachmentsOf(plan);
    for (const { resource, policyArn } of attachments) {
      const managed = awsManagedPolicyName(policyArn);
      if (managed !== undefined && BROAD_MANAGED_POLICY.test(managed))
        fail(resource, `attaches AWS-managed policy ${managed}, which grants broad access`);
    }

    const buckets = new Set(ofType(plan, BUCKET).map(bucketArnNameOf));
    for (const role of ofType(plan, ROLE)) {
      if (!isIrsaRole(role)) continue;
      for (const statement of statementsOf(parsePolicy(inputAt(role, "assumeRolePolicy")))) {
        if (!asList(statement.Action).includes("sts:AssumeRoleWithWebIdentity")) continue;
        const federated = (statement.Principal as { Federated?: string } | undefined)?.Federated ?? "";
        if (!federated.includes(":oidc-provider/")) continue;
        const subjects = Object.entries(statement.Condition?.StringEquals ?? {}).filter(([key]) =>
          key.endsWith(":sub"),
        );
        const subject = subjects[0]?.[1];
        if (
          subjects.length !== 1 ||
          typeof subject !== "string" ||
          !/^system:serviceaccount:[a-z0-9-]+:[a-z0-9.-]+$/.test(subject)
        ) {
          fail(role, "IRSA trust policy is not scoped to one service account (StringEquals <issuer>:sub)");
        }
      }

      // Its own buckets: every S3 grant names a bucket of the platform, never a pattern that could match others'.
      const rolesAttachments = attachments.filter((attachment) =>
        attachment.roles.some((reference) => refersTo(reference, role, "role")),
      );
      const documents: [PlanResource, PlanValue | undefined][] = [
        ...asArray(inputAt(role, "inlinePolicies")).map(
          (inline) => [role, at(inline, "policy")] as [PlanResource, PlanValue],
        ),
        ...ofType(plan, ROLE_POLICY)
          .filter((policy) => refersTo(inputAt(policy, "role"), role, "role"))
          .map((policy) => [policy, inputAt(policy, "policy")] as [PlanResource, PlanValue]),
        ...ofType(plan, POLICY)
          .filter((policy) => rolesAttachments.some(({ policyArn }) => refersTo(policyArn, policy, "policy")))
          .map((policy) => [policy, inputAt(policy, "policy")] as [PlanResource, PlanValue]),
      ];
      for (const [resource, document] of documents) {
        for (const statement of statementsOf(parsePolicy(document))) {
          // A statement that grants everywhere is reported once, above.
          if (statement.Effect !== "Allow" || statementProblems(statement).length > 0) continue;
          if (!asList(statement.Action).some(touchesS3)) continue;
          for (const resourcePattern of asList(statement.Resource)) {
            if (appliesToS3(resourcePattern) && !namesPlatformBucket(resourcePattern, buckets))
              fail(
                resource,
                `IRSA role ${role.name}: statement ${statement.Sid ?? "(unnamed)"} grants S3 on ${resourcePattern}, not one named bucket of the platform`,
              );
          }
        }
      }
      for (const { resource, policyArn } of rolesAttachments) {
        const managed = awsManagedPolicyName(policyArn);
        if (managed !== undefined && S3_MANAGED_POLICY.test(managed) && !BROAD_MANAGED_POLICY.test(managed))
          fail(resource, `IRSA role ${role.name}: AWS-managed policy ${managed} grants S3 on every bucket`);
      }
    }
    return findings;
  },
};

/**
 * Values that are not credentials even under a credential's name (their values must reach the plan as "[secret]"):
 * a secret, something known only at deployment, an ARN, nothing, or an External Secrets template that only names the
 * synced value it is filled from (`{{ .password }}`).
 */
const NOT_A_SECRET = /^(\[secret\]|\[unknown\]|arn:aws[a-z-]*:.*|\{\{\s*\.\w+(\s*\|\s*\w+)*\s*\}\}|)$/;

/** Plain values that are credentials: under a credential's name, or a password inside a URL (any name). */
function* plainSecrets(value: PlanValue | undefined, path: string): Generator<{ path: string; problem: string }> {
  if (value === null || value === undefined) return;
  if (typeof value === "string") {
    if (hasPasswordInUrl(value)) yield { path, problem: "carries a password in its URL" };
    return;
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* plainSecrets(item, `${path}.${index}`);
    return;
  }
  if (typeof value !== "object") return;
  for (const [key, item] of Object.entries(value)) {
    const itemPath = path ? `${path}.${key}` : key;
    if (typeof item === "string" && isCredentialKey(key) && !NOT_A_SECRET.test(item))
      yield { path: itemPath, problem: "is a plain value, not a secret" };
    else yield* plainSecrets(item, itemPath);
  }
}

export const a15KeysAndSecrets: Guardrail = {
  id: "A15",
  title: "KMS keys rotate; secrets live in Secrets Manager or Pulumi secrets, never as plain config",
  check({ plan }) {
    const { findings, fail } = findingsFor("A15");
    for (const key of ofType(plan, KMS_KEY)) {
      if (inputAt(key, "enableKeyRotation") !== true) fail(key, "key rotation is off");
    }
    for (const resource of plan.resources) {
      for (const { path, problem } of plainSecrets(resource.inputs, "")) fail(resource, `${path} ${problem}`);
    }
    for (const { path, problem } of plainSecrets(plan.outputs, "")) fail(stackKey(plan), `output ${path} ${problem}`);
    return findings;
  },
};

export const a16Registry: Guardrail = {
  id: "A16",
  title: "ECR: scan on push, immutable tags, a lifecycle policy",
  check({ plan }) {
    const { findings, fail } = findingsFor("A16");
    const governed = new Set(
      ofType(plan, LIFECYCLE_POLICY)
        .filter((policy) => asArray(at(parsePolicy(inputAt(policy, "policy")) as PlanValue, "rules")).length > 0)
        .map((policy) => inputAt(policy, "repository")),
    );
    for (const repository of ofType(plan, REPOSITORY)) {
      if (inputAt(repository, "imageScanningConfiguration.scanOnPush") !== true)
        fail(repository, "images are not scanned on push");
      if (inputAt(repository, "imageTagMutability") !== "IMMUTABLE") fail(repository, "image tags are mutable");
      const names = [inputAt(repository, "name"), `${repository.name}-id`];
      if (!names.some((name) => governed.has(name))) fail(repository, "no lifecycle policy");
    }
    return findings;
  },
};

export const storageGuardrails: Guardrail[] = [a11Buckets, a12Cdn, a14Iam, a15KeysAndSecrets, a16Registry];
