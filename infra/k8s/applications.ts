import * as pulumi from "@pulumi/pulumi";
import type { Topology } from "../../stacks/topology.js";
import type { DatabaseConnection } from "../aws/connections.js";
import { DetectionWorker, type DetectorModel } from "./detection-worker.js";
import { FastifyService } from "./fastify-service.js";
import { ApiIngress } from "./ingress.js";
import { Migrations } from "./migrations.js";
import { APP_NAMESPACE } from "./names.js";
import { AppNamespace } from "./namespace.js";
import type { Connections, ServiceAccountRoleFactory } from "./workload.js";

export interface ApplicationsArgs {
  /** The validated topology (stacks/topology.ts). */
  topology: Topology;
  environment: "dev" | "prod";
  kubernetesVersion: string;
  vpcCidr: string;
  /** ECR repository URLs by the topology's image names (infra/aws/registry.ts `repositoryUrls`). */
  repositories: Record<string, pulumi.Input<string>>;
  imageTag: string;
  /**
   * Pinned references (`<repository>@sha256:…`) by the topology's image names, from the images the program built and
   * pushed (infra/aws/images.ts `deployRefs`): when given, every workload runs these digests, not the tag.
   */
  images?: Record<string, pulumi.Input<string>>;
  detectorModel: DetectorModel;
  /** The API's public host and the ClusterIssuer its certificate comes from. */
  apiHost: string;
  clusterIssuer: string;
  connections: Connections & { database: DatabaseConnection };
  serviceAccountRole?: ServiceAccountRoleFactory;
}

/**
 * Everything the topology runs on the cluster: the application namespace, the migrations Job, one FastifyService per
 * http service and one DetectionWorker per worker (both waiting for the migrations), and the API ingress to the
 * public service. Pass the Kubernetes provider as `providers: [kubernetes]`.
 *
 * Cost: see the components; the namespace and ingress cost nothing themselves.
 */
export class Applications extends pulumi.ComponentResource {
  readonly namespace: string = APP_NAMESPACE;
  readonly services: Record<string, FastifyService | DetectionWorker> = {};

  constructor(name: string, args: ApplicationsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:k8s:Applications", name, {}, opts);
    const { topology, environment } = args;
    const namespace = new AppNamespace(APP_NAMESPACE, { kubernetesVersion: args.kubernetesVersion }, { parent: this });
    const inNamespace = { parent: this, dependsOn: [namespace] };
    const common = {
      environment,
      namespace: APP_NAMESPACE,
      imageTag: args.imageTag,
      vpcCidr: args.vpcCidr,
      connections: args.connections,
      ...(args.serviceAccountRole ? { serviceAccountRole: args.serviceAccountRole } : {}),
    };
    const migrations = new Migrations(
      "migrations",
      { ...common, repository: repositoryOf(topology.migrations.image), database: args.connections.database },
      inNamespace,
    );
    function repositoryOf(image: string): pulumi.Input<string> {
      const url = args.images ? args.images[image] : args.repositories[image];
      if (url === undefined)
        throw new Error(`no ECR repository for image "${image}": the Registry is built from the topology`);
      return url;
    }
    const portOf = new Map(topology.services.map((service) => [service.name, service.port]));

    for (const spec of topology.services) {
      // Services that touch the database roll out only once its schema is migrated.
      const usesDatabase = spec.connections.some((connection) => connection.startsWith("database"));
      const dependsOn = usesDatabase ? [migrations.job] : [];
      this.services[spec.name] =
        spec.kind === "worker"
          ? new DetectionWorker(
              spec.name,
              { ...common, spec, repository: repositoryOf(spec.image), model: args.detectorModel, dependsOn },
              inNamespace,
            )
          : new FastifyService(
              spec.name,
              {
                ...common,
                spec,
                repository: repositoryOf(spec.image),
                callers: topology.services
                  .filter((other) => other.calls.includes(spec.name))
                  .map((other) => other.name),
                callees: spec.calls.map((callee) => ({ name: callee, port: portOf.get(callee) ?? 0 })),
                dependsOn,
              },
              inNamespace,
            );
    }

    const gateway = topology.services.find((service) => service.public);
    if (gateway) {
      new ApiIngress(
        "api",
        {
          namespace: APP_NAMESPACE,
          host: args.apiHost,
          clusterIssuer: args.clusterIssuer,
          service: { name: gateway.name, port: gateway.port },
        },
        inNamespace,
      );
    }
    this.registerOutputs({});
  }
}
