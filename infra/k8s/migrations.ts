import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { DatabaseConnection } from "../aws/connections.js";
import { labelsFor } from "./names.js";
import {
  containerSecurityContext,
  externalSecret,
  imageRef,
  podSecurityContext,
  type ServiceAccountRoleFactory,
  serviceRole,
  wireConnections,
} from "./workload.js";

export interface MigrationsArgs {
  environment: "dev" | "prod";
  namespace: string;
  /** The ECR repository URL of the migrations image (every service's SQL migrations and the runner). */
  repository: pulumi.Input<string>;
  /** The same tag as the services: migrations and code ship together. */
  imageTag: string;
  database: DatabaseConnection;
  vpcCidr: string;
  /** Creates the Job's IRSA role, needed when the database takes IAM auth. */
  serviceAccountRole?: ServiceAccountRoleFactory;
}

/**
 * A Job that applies the database migrations (node-pg-migrate under its advisory lock, so a re-run is harmless)
 * before the services roll out: the service Deployments depend on it and Pulumi waits for it to complete. Runs with
 * the services' restricted security context, its own ServiceAccount without a token, credentials from an
 * ExternalSecret, and a NetworkPolicy that lets it reach the database only. A new image tag replaces the Job (its
 * template is immutable), so each release migrates once.
 *
 * Cost: nothing beyond a minute of pod time per release.
 */
export class Migrations extends pulumi.ComponentResource {
  readonly job: k8s.batch.v1.Job;

  constructor(name: string, args: MigrationsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:Migrations", name, {}, opts);
    const { namespace } = args;
    const app = "migrations";
    const { labels, selector } = labelsFor(app, "migrations");
    const secretName = `${app}-env`;
    const child = { parent: this };
    const wiring = wireConnections(
      { name: app, connections: ["database"], buckets: [] },
      { database: args.database },
      { secretName, vpcCidr: args.vpcCidr, environment: args.environment },
    );

    const role = serviceRole(wiring, args.serviceAccountRole, namespace, app);
    const serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-sa`,
      {
        metadata: {
          name: app,
          namespace,
          labels,
          ...(role ? { annotations: { "eks.amazonaws.com/role-arn": role.arn } } : {}),
        },
        automountServiceAccountToken: false,
      },
      child,
    );
    // with IAM auth the Job holds no credential at all
    const secret =
      wiring.secretData.length > 0
        ? externalSecret(secretName, namespace, labels, wiring.secretData, child)
        : undefined;
    const policy = new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      {
        metadata: { name: app, namespace, labels },
        spec: { podSelector: { matchLabels: selector }, policyTypes: ["Ingress", "Egress"], egress: wiring.egress },
      },
      child,
    );
    this.job = new k8s.batch.v1.Job(
      `${name}-job`,
      {
        metadata: { name: app, namespace, labels },
        spec: {
          backoffLimit: 3,
          activeDeadlineSeconds: 600,
          template: {
            metadata: { labels },
            spec: {
              restartPolicy: "Never",
              serviceAccountName: app,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: podSecurityContext(),
              containers: [
                {
                  name: app,
                  image: imageRef(args.repository, args.imageTag),
                  imagePullPolicy: "IfNotPresent",
                  env: wiring.env,
                  resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
                  securityContext: containerSecurityContext(),
                  volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, ...wiring.volumeMounts],
                },
              ],
              volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }, ...wiring.volumes],
            },
          },
        },
      },
      // The template is immutable: a new release deletes the finished Job and runs a new one.
      { ...child, dependsOn: [serviceAccount, ...(secret ? [secret] : []), policy], deleteBeforeReplace: true },
    );
    this.registerOutputs({});
  }
}
