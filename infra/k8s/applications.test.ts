import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DETECTOR_MODEL_FILE } from "../../stacks/platform.js";
import { REPOSITORY_ROOT } from "../../stacks/plan/stack-file.js";
import type { PlanDocument, PlanResource } from "../../stacks/plan/document.js";
import { planOf } from "../../stacks/plan/testing.js";
import { PUBLIC_PATHS, topology } from "../../stacks/topology.js";
import { schemaProblem } from "../guardrails/k8s/schema.js";
import { APP_NAMESPACE } from "./names.js";

type Json = Record<string, unknown>;
const kindsOf = ["Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "ServiceMonitor"];

/** The object of that kind and name in the application namespace. */
function object(plan: PlanDocument, kind: string, name: string): Json {
  const found = plan.resources.find(
    (resource) =>
      resource.inputs.kind === kind &&
      (resource.inputs.metadata as Json | undefined)?.name === name &&
      (resource.inputs.metadata as Json | undefined)?.namespace === APP_NAMESPACE,
  );
  if (!found) throw new Error(`no ${kind} ${name} in the ${plan.stack} plan`);
  return found.inputs as Json;
}
const get = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((current, key) => (current as Json | undefined)?.[key], value);
const containerOf = (deployment: Json): Json => (get(deployment, "spec.template.spec.containers") as Json[])[0] as Json;

describe.each(["prod", "dev"])("the %s plan's applications", (stack) => {
  it("has, for each service of the topology, its Deployment, Service, PDB, NetworkPolicy, ServiceAccount and ServiceMonitor", async () => {
    const plan = await planOf(stack);
    for (const service of topology.services) {
      for (const kind of kindsOf)
        expect(() => object(plan, kind, service.name), `${kind} ${service.name}`).not.toThrow();
      // KEDA owns the worker's HPA (through its ScaledObject); the http services have their own.
      if (service.kind === "http") expect(object(plan, "HorizontalPodAutoscaler", service.name)).toBeDefined();
      else expect(object(plan, "ScaledObject", service.name)).toBeDefined();
    }
  });

  it("pins every workload to the digest of the image built and pushed to the stack's ECR repository", async () => {
    const plan = await planOf(stack);
    const built = plan.outputs.imageRefs as Record<string, string>;
    const pinned = (image: string) =>
      new RegExp(`^123456789012\\.dkr\\.ecr\\.eu-west-1\\.amazonaws\\.com/ndt-${stack}/${image}@sha256:[a-f0-9]{64}$`);
    for (const service of topology.services) {
      const image = containerOf(object(plan, "Deployment", service.name)).image;
      expect(image).toMatch(pinned(service.image));
      // a GPU service runs the GPU variant of its image
      expect(image).toBe(built[service.gpu ? `${service.image}-gpu` : service.image]);
    }
    const job = plan.resources.find((resource) => resource.inputs.kind === "Job")?.inputs as Json;
    expect(containerOf(job).image).toBe(built[topology.migrations.image]);
  });

  it("runs the detector on the GPU pool with one GPU, the taint tolerated, a startup probe and KEDA on detections", async () => {
    const plan = await planOf(stack);
    const detector = object(plan, "Deployment", "detector");
    const pod = get(detector, "spec.template.spec") as Json;
    const container = containerOf(detector);
    expect(get(container, "resources.limits")).toMatchObject({ "nvidia.com/gpu": "1" });
    expect(pod.tolerations).toContainEqual({
      key: "nvidia.com/gpu",
      operator: "Equal",
      value: "true",
      effect: "NoSchedule",
    });
    expect(get(pod, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms")).toEqual([
      { matchExpressions: [{ key: "ndt.io/node-pool", operator: "In", values: ["gpu"] }] },
    ]);
    expect(get(container, "startupProbe.httpGet.path")).toBe("/readyz");
    expect(container.env).toContainEqual({ name: "INFERENCE_THREADS", value: "1" });
    expect(container.env).toContainEqual({ name: "ORT_INTRA_OP_THREADS", value: "2" });
    const scaled = object(plan, "ScaledObject", "detector");
    expect(get(scaled, "spec.minReplicaCount")).toBe(stack === "dev" ? 0 : 2);
    expect(get(scaled, "spec.triggers")).toMatchObject([
      {
        type: "rabbitmq",
        metadata: { queueName: "detections", mode: "QueueLength" },
        authenticationRef: { name: "detector-keda" },
      },
    ]);
  });

  it("fetches the model from the models bucket and checks its sha256 before the worker starts", async () => {
    const plan = await planOf(stack);
    const init = (
      get(object(plan, "Deployment", "detector"), "spec.template.spec.initContainers") as Json[]
    )[0] as Json;
    const env = Object.fromEntries((init.env as Json[]).map((variable) => [variable.name, variable.value]));
    expect(env.MODEL_BUCKET).toBe(`ndt-${stack}-models-123456789012`);
    expect(env.MODEL_KEY).toBe("models/ndt-defects-v1.onnx");
    expect(env.MODEL_SHA256).toMatch(/^[a-f0-9]{64}$/);
    expect((init.args as string[])[0]).toContain("sha256sum -c -");
  });

  it("serves the API over TLS from the stack's ACME issuer, routing only the public paths to the gateway", async () => {
    const plan = await planOf(stack);
    const ingress = object(plan, "Ingress", "api");
    const host = stack === "prod" ? "api.ndt.example.com" : "api.dev.ndt.example.com";
    expect(get(ingress, "spec.ingressClassName")).toBe("nginx");
    expect(get(ingress, "spec.tls")).toEqual([{ hosts: [host], secretName: "api-tls" }]);
    expect((get(ingress, "metadata.annotations") as Json)["cert-manager.io/cluster-issuer"]).toBe(
      stack === "prod" ? "letsencrypt-production" : "letsencrypt-staging",
    );
    const paths = (get(ingress, "spec.rules") as Json[]).flatMap((rule) => get(rule, "http.paths") as Json[]);
    expect(paths.map((path) => path.path)).toEqual([...PUBLIC_PATHS]);
    expect(paths.every((path) => get(path, "backend.service.name") === "gateway")).toBe(true);
    expect(paths.some((path) => String(path.path).startsWith("/metrics") || path.path === "/")).toBe(false);
  });

  it("gives IRSA roles only to services with buckets or (prod, RDS Proxy) IAM database auth, and no service account a token", async () => {
    const plan = await planOf(stack);
    // prod's RDS Proxy takes IAM auth: every database user (the migrations Job too) connects with its role
    const iamDatabase = stack === "prod";
    const accounts = [...topology.services, { name: "migrations", buckets: [], connections: ["database"] }];
    for (const service of accounts) {
      const account = object(plan, "ServiceAccount", service.name);
      expect(account.automountServiceAccountToken).toBe(false);
      const annotation = (get(account, "metadata.annotations") as Json | undefined)?.["eks.amazonaws.com/role-arn"];
      const needsRole = service.buckets.length > 0 || (iamDatabase && service.connections.includes("database"));
      if (needsRole) expect(annotation, service.name).toMatch(/:role\/cluster-irsa-/);
      else expect(annotation, service.name).toBeUndefined();
    }
  });

  it("lets a role connect to the database only as the database user through the proxy (prod), with no password in the pod", async () => {
    const plan = await planOf(stack);
    const connects = plan.resources.filter(
      (resource: PlanResource) =>
        resource.type === "aws:iam/rolePolicy:RolePolicy" && resource.name.startsWith("database-connect-"),
    );
    const users = [
      ...topology.services.filter((s) => s.connections.includes("database")).map((s) => s.name),
      "migrations",
    ];
    if (stack === "dev") {
      expect(connects).toEqual([]);
      return;
    }
    expect(connects.map((resource) => resource.name).sort()).toEqual(
      users.map((user) => `database-connect-cluster-irsa-${user}`).sort(),
    );
    for (const resource of connects) {
      const policy = JSON.parse(String(resource.inputs.policy)) as { Statement: Json[] };
      expect(policy.Statement).toEqual([
        {
          Sid: "ConnectThroughProxy",
          Effect: "Allow",
          Action: "rds-db:connect",
          Resource: "arn:aws:rds-db:eu-west-1:123456789012:dbuser:prx-database-proxy/ndt_admin",
        },
      ]);
    }
    for (const user of users) {
      const workload = user === "migrations" ? object(plan, "Job", user) : object(plan, "Deployment", user);
      const env = get(workload, "spec.template.spec.containers.0.env") as Json[];
      expect(env, user).toContainEqual({ name: "DATABASE_IAM_AUTH", value: "true" });
      expect(env, user).toContainEqual({ name: "AWS_REGION", value: "eu-west-1" });
      expect(
        env.filter((variable) => variable.name === "AWS_REGION"),
        user,
      ).toHaveLength(1);
      expect(
        env.map((variable) => variable.name),
        user,
      ).not.toContain("PGPASSWORD");
    }
  });

  it("admits the gateway from the ingress controller only, and each backend from its callers only", async () => {
    const plan = await planOf(stack);
    const gateway = object(plan, "NetworkPolicy", "gateway");
    expect(get(gateway, "spec.ingress.0.from")).toEqual([
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
    ]);
    const from = (...names: string[]) =>
      names.map((name) => ({ podSelector: { matchLabels: { "app.kubernetes.io/name": name } } }));
    expect(get(object(plan, "NetworkPolicy", "files"), "spec.ingress.0.from")).toEqual(from("gateway"));
    // files and reports verify tokens themselves: they fetch auth's JWKS
    const auth = object(plan, "NetworkPolicy", "auth");
    expect(get(auth, "spec.ingress.0.from")).toEqual(from("gateway", "files", "reports"));
    // auth reaches PostgreSQL and Redis by port inside the VPC, and in prod STS (443) for its IAM database auth
    const ports = (get(auth, "spec.egress") as Json[]).map((rule) => get(rule, "ports.0.port"));
    expect(ports).toEqual(stack === "prod" ? [5432, 6379, 443] : [5432, 6379]);
  });

  it("has every HTTP service trust x-forwarded-for from the VPC only: its proxies (ingress, gateway) live there", async () => {
    const plan = await planOf(stack);
    const vpc = plan.resources.find((resource) => resource.type === "awsx:ec2:Vpc");
    const cidr = vpc?.inputs.cidrBlock;
    expect(cidr).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    const http = topology.services.filter((service) => !service.queue);
    expect(http.map((service) => service.name).sort()).toEqual(["auth", "files", "gateway", "reports"]);
    for (const service of http) {
      const env = containerOf(object(plan, "Deployment", service.name)).env as Json[];
      expect(env.find((e) => e.name === "TRUST_PROXY")?.value, service.name).toBe(cidr);
    }
  });

  it("gives each service the in-cluster origin of every service it calls, and auth's JWKS to token verifiers", async () => {
    const plan = await planOf(stack);
    const envOf = (name: string) =>
      Object.fromEntries(
        (containerOf(object(plan, "Deployment", name)).env as Json[]).map((e) => [e.name, e.value ?? e.valueFrom]),
      );
    const ns = "ndt";
    expect(envOf("gateway")).toMatchObject({
      AUTH_URL: `http://auth.${ns}.svc.cluster.local:8081`,
      FILES_URL: `http://files.${ns}.svc.cluster.local:8082`,
      REPORTS_URL: `http://reports.${ns}.svc.cluster.local:8083`,
      JWKS_URL: `http://auth.${ns}.svc.cluster.local:8081/.well-known/jwks.json`,
    });
    for (const verifier of ["files", "reports"])
      expect(envOf(verifier).JWKS_URL, verifier).toBe(`http://auth.${ns}.svc.cluster.local:8081/.well-known/jwks.json`);
    expect(envOf("auth").JWKS_URL).toBeUndefined();
  });

  it("connects every database user over TLS verified against Amazon's RDS and RDS Proxy roots", async () => {
    const plan = await planOf(stack);
    const users = topology.services.filter((service) => service.connections.includes("database"));
    expect(users.length).toBeGreaterThan(0);
    for (const { name } of users) {
      const env = containerOf(object(plan, "Deployment", name)).env as Json[];
      expect(env, name).toContainEqual({ name: "DATABASE_TLS", value: "verify-full" });
      expect(env, name).toContainEqual({ name: "DATABASE_CA", value: "aws-rds" });
    }
  });

  it("lets each service list under the prefix its env names: the listing its readiness check makes", async () => {
    const plan = await planOf(stack);
    for (const service of topology.services) {
      const env = containerOf(object(plan, "Deployment", service.name)).env as Json[];
      for (const { bucket, prefix } of service.buckets) {
        expect(env, service.name).toContainEqual({ name: `S3_PREFIX_${bucket.toUpperCase()}`, value: prefix });
        const grant = plan.resources.find(
          (resource: PlanResource) =>
            resource.type === "aws:iam/rolePolicy:RolePolicy" &&
            resource.name.startsWith(`storage-${bucket}-`) &&
            resource.name.includes(`-cluster-irsa-${service.name}-`),
        );
        expect(grant, `${service.name} ${bucket}`).toBeDefined();
        const policy = JSON.parse(String(grant?.inputs.policy)) as { Statement: Json[] };
        const list = policy.Statement.find((statement) => statement.Action === "s3:ListBucket");
        expect(list?.Condition, `${service.name} ${bucket}`).toEqual({ StringLike: { "s3:prefix": [`${prefix}*`] } });
      }
    }
  });

  it("uploads the released model from this commit to where the detector's init container fetches it", async () => {
    const plan = await planOf(stack);
    const deployment = object(plan, "Deployment", "detector");
    const fetch = (get(deployment, "spec.template.spec.initContainers") as Json[]).find(
      (c) => c.name === "fetch-model",
    );
    const env = Object.fromEntries((fetch?.env as Json[]).map((variable) => [variable.name, variable.value]));
    const uploaded = plan.resources.filter(
      (resource: PlanResource) => resource.type === "aws:s3/bucketObjectv2:BucketObjectv2",
    );
    expect(uploaded.map((resource) => resource.inputs)).toEqual([
      {
        bucket: env.MODEL_BUCKET,
        key: env.MODEL_KEY,
        source: { fileAsset: DETECTOR_MODEL_FILE },
        contentType: "application/octet-stream",
      },
    ]);
    // the file the object is made from is the one whose sha256 the init container checks
    const shipped = createHash("sha256")
      .update(readFileSync(join(REPOSITORY_ROOT, DETECTOR_MODEL_FILE)))
      .digest("hex");
    expect(env.MODEL_SHA256).toBe(shipped);
  });

  it("passes credentials only through the ExternalSecret of each service", async () => {
    const plan = await planOf(stack);
    const env = containerOf(object(plan, "Deployment", "auth")).env as Json[];
    const secret = object(plan, "ExternalSecret", "auth-env");
    expect(get(secret, "spec.secretStoreRef")).toEqual({ kind: "ClusterSecretStore", name: "aws-secrets-manager" });
    const synced = (get(secret, "spec.data") as Json[]).map((entry) => entry.secretKey);
    // prod connects to its RDS Proxy with IAM tokens: no database password there
    expect(synced).toEqual(
      stack === "prod"
        ? ["REDIS_PASSWORD", "SIGNING_KEY_SECRET"]
        : ["DATABASE_PASSWORD", "REDIS_PASSWORD", "SIGNING_KEY_SECRET"],
    );
    for (const key of synced.filter((key) => key !== "DATABASE_PASSWORD"))
      expect(env).toContainEqual({ name: key, valueFrom: { secretKeyRef: { name: "auth-env", key } } });
    if (stack === "dev") {
      // the database password as a mounted file, read per connection: RDS's weekly rotation needs no restart
      const pod = get(object(plan, "Deployment", "auth"), "spec.template.spec") as Json;
      expect(pod.volumes).toContainEqual({
        name: "database-password",
        secret: { secretName: "auth-env", items: [{ key: "DATABASE_PASSWORD", path: "password" }] },
      });
      expect(containerOf(object(plan, "Deployment", "auth")).volumeMounts).toContainEqual({
        name: "database-password",
        mountPath: "/var/run/secrets/ndt/database",
        readOnly: true,
      });
      expect(env).toContainEqual({ name: "DATABASE_PASSWORD_FILE", value: "/var/run/secrets/ndt/database/password" });
    }
    expect(get(secret, "spec.refreshInterval")).toBe("5m");
    // every other variable is a plain setting: nothing secret-shaped is set literally
    for (const variable of env.filter((entry) => entry.value !== undefined && !String(entry.name).endsWith("_FILE")))
      expect(String(variable.name)).not.toMatch(/PASSWORD|SECRET|TOKEN/);
  });

  it("creates every secret the services' ExternalSecrets read by name, under the data key", async () => {
    const plan = await planOf(stack);
    const byName = plan.resources
      .filter((resource: PlanResource) => resource.inputs.kind === "ExternalSecret")
      .filter((resource: PlanResource) => (resource.inputs.metadata as Json).namespace === APP_NAMESPACE)
      .flatMap((resource: PlanResource) => get(resource.inputs, "spec.data") as Json[])
      .map((entry) => entry.remoteRef as Json)
      .filter((ref) => typeof ref.key === "string" && ref.key.startsWith("ndt/"));
    // the data tiers' secrets are read by ARN; the services' own secrets by their path, auth's signing key among them
    expect(byName).toContainEqual({ key: `ndt/${stack}/auth/signing-key`, property: "value" });
    for (const ref of byName) {
      const created = plan.resources.find(
        (resource: PlanResource) =>
          resource.type === "aws:secretsmanager/secret:Secret" && resource.inputs.name === ref.key,
      );
      expect(created, String(ref.key)).toBeDefined();
      expect(created?.inputs.kmsKeyId).toBe("arn:aws:kms:eu-west-1:123456789012:key/keys-data");
      expect(created?.inputs.recoveryWindowInDays).toBe(stack === "prod" ? 7 : 0);
    }
    // generated (a random value), never a literal in the plan
    const version = plan.resources.find(
      (resource: PlanResource) =>
        resource.type === "aws:secretsmanager/secretVersion:SecretVersion" &&
        resource.name === "app-secrets-auth-signing-key",
    );
    expect(version?.inputs.secretString).toBe("[secret]");
  });

  it("runs the migrations as a Job under the same restricted security context", async () => {
    const plan = await planOf(stack);
    const job = object(plan, "Job", "migrations");
    expect(get(job, "spec.template.spec.containers.0.securityContext")).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(get(job, "spec.template.spec.containers.0.image")).toMatch(/\/ndt-[a-z]+\/migrations@sha256:[a-f0-9]{64}$/);
  });

  it("validates every Kubernetes object against the Kubernetes 1.33 API schema (K12)", async () => {
    const plan = await planOf(stack);
    const objects = plan.resources.filter(
      (resource: PlanResource) => resource.type.startsWith("kubernetes:") && typeof resource.inputs.kind === "string",
    );
    expect(objects.length).toBeGreaterThan(40);
    const problems = objects
      .map((resource) => [resource.name, schemaProblem(resource.inputs)] as const)
      .filter(([, problem]) => problem !== undefined);
    expect(problems).toEqual([]);
  });
});

describe("the schema validation", () => {
  it("rejects a wrongly typed field, an unserved API version and an unknown kind", async () => {
    const plan = await planOf("prod");
    const deployment = structuredClone(object(plan, "Deployment", "files"));
    (get(deployment, "spec.template.spec.containers.0.ports.0") as Json).containerPort = "http";
    expect(schemaProblem(deployment)).toMatch(/containerPort must be integer/);
    expect(schemaProblem({ ...object(plan, "Ingress", "api"), apiVersion: "extensions/v1beta1" })).toMatch(
      /not served by Kubernetes 1.33/,
    );
    expect(schemaProblem({ apiVersion: "example.com/v1", kind: "Widget" })).toMatch(/no schema/);
    const monitor = structuredClone(object(plan, "ServiceMonitor", "files"));
    (get(monitor, "spec.endpoints.0") as Json).interval = "every minute";
    expect(schemaProblem(monitor)).toMatch(/interval must match pattern/);
  });
});
