import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { BrokerConnection } from "./connections.js";
import { createDataTierSecurityGroup, storeSecret } from "./data-tier.js";
import { applyTransform, type Transform } from "./transform.js";

/** AMQP over TLS: the only protocol port clients use. */
export const AMQPS_PORT = 5671;
/** The RabbitMQ management API (HTTPS), read by KEDA's queue-length scaler. */
export const MANAGEMENT_PORT = 443;

export interface BrokerArgs {
  vpcId: pulumi.Input<string>;
  /**
   * Private or isolated subnets. A single instance takes the first; a cluster spreads over all of them (3 AZs).
   */
  subnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** The only security group allowed to connect: the EKS cluster's (A13). */
  clientSecurityGroupId: pulumi.Input<string>;
  /** Customer-managed key for the credentials' secret (A15). */
  kmsKeyArn: pulumi.Input<string>;
  /** RabbitMQ 3.13 or newer (A10), e.g. "3.13"; Amazon MQ applies patch versions itself. */
  engineVersion: string;
  /** e.g. "mq.m5.large" in prod, "mq.t3.micro" in dev (single instance only). */
  instanceType: string;
  /**
   * `CLUSTER_MULTI_AZ` runs three nodes in three AZs behind one endpoint, with quorum queues surviving a lost node.
   * @default "SINGLE_INSTANCE" (HA is a stack choice: prod sets CLUSTER_MULTI_AZ)
   */
  deploymentMode?: "SINGLE_INSTANCE" | "CLUSTER_MULTI_AZ";
  /**
   * The broker's administrative user (RabbitMQ refuses `guest`).
   * @default "ndt"
   */
  username?: string;
  transform?: {
    broker?: Transform<aws.mq.BrokerArgs>;
    securityGroup?: Transform<aws.ec2.SecurityGroupArgs>;
    credentialsSecret?: Transform<aws.secretsmanager.SecretArgs>;
  };
}

/** Problems with BrokerArgs, each naming its property (STYLE.md rule 5); empty when the args are usable. */
export function validateBrokerArgs(args: BrokerArgs): { path: string; reason: string }[] {
  const problems: { path: string; reason: string }[] = [];
  const [major = 0, minor = 0] = args.engineVersion.split(".").map(Number);
  if (major < 3 || (major === 3 && minor < 13))
    problems.push({ path: "engineVersion", reason: `must be RabbitMQ 3.13 or newer (got ${args.engineVersion})` });
  const username = args.username ?? "ndt";
  if (username === "guest" || !/^[A-Za-z0-9_.~-]{2,100}$/.test(username))
    problems.push({ path: "username", reason: `must be 2–100 of [A-Za-z0-9_.~-] and not guest (got ${username})` });
  if ((args.deploymentMode ?? "SINGLE_INSTANCE") === "CLUSTER_MULTI_AZ" && args.instanceType.startsWith("mq.t3."))
    problems.push({ path: "instanceType", reason: `${args.instanceType} runs single instances only` });
  return problems;
}

/**
 * Amazon MQ for RabbitMQ: private (no public endpoint), general logs to CloudWatch, minor versions upgraded by AWS,
 * one instance in dev and a three-node multi-AZ cluster in prod. The administrative credentials come from a
 * RandomPassword and live only as secrets (state, Secrets Manager under the data CMK). Only the cluster's security
 * group reaches AMQPS (5671) and the management API (443, for KEDA). Data at rest is encrypted with an AWS-owned key:
 * Amazon MQ for RabbitMQ does not take a customer-managed one.
 *
 * Children and their transforms: `broker`, `securityGroup`, `credentialsSecret`.
 *
 * Cost: dev (mq.t3.micro single instance) about $20/month. prod (mq.m5.large cluster, 3 nodes) about $850/month,
 * plus storage ($0.10/GB-month) and the secret ($0.40/month).
 */
export class Broker extends pulumi.ComponentResource {
  /** `amqps://host:5671`, without credentials. */
  readonly amqpsUrl: pulumi.Output<string>;
  readonly managementUrl: pulumi.Output<string>;
  readonly securityGroupId: pulumi.Output<string>;
  /** Secrets Manager secret holding `{username, password}`. */
  readonly credentialsSecretArn: pulumi.Output<string>;
  /** What the Kubernetes services get: the AMQPS URL, the management URL, the credentials' secret ARN. */
  readonly connection: BrokerConnection;

  constructor(name: string, args: BrokerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:Broker", name, {}, opts);
    const settings = normalizeArgs();
    const parent = this;

    const password = createPassword();
    const credentials = storeCredentials(password);
    const securityGroup = createSecurityGroup();
    const broker = createBroker();

    const instance = broker.instances.apply((instances) => {
      const first = instances[0];
      if (!first) throw new Error(`${name}: the broker reports no instance`);
      return first;
    });
    this.amqpsUrl = instance.apply(
      (first) => first.endpoints.find((endpoint) => endpoint.startsWith("amqps://")) ?? first.endpoints[0] ?? "",
    );
    this.managementUrl = instance.apply((first) => first.consoleUrl);
    this.securityGroupId = securityGroup.id;
    this.credentialsSecretArn = credentials.arn;
    this.connection = {
      url: this.amqpsUrl,
      managementUrl: this.managementUrl,
      secretArn: this.credentialsSecretArn,
    };
    this.registerOutputs({ amqpsUrl: this.amqpsUrl, managementUrl: this.managementUrl });

    function normalizeArgs() {
      const problems = validateBrokerArgs(args);
      if (problems.length > 0) {
        throw new Error(
          `Broker ${name} has invalid args:\n${problems.map((p) => `  - ${p.path}: ${p.reason}`).join("\n")}`,
        );
      }
      const deploymentMode = args.deploymentMode ?? "SINGLE_INSTANCE";
      return {
        deploymentMode,
        username: args.username ?? "ndt",
        // A single instance lives in exactly one subnet; a cluster needs one per AZ.
        subnetIds:
          deploymentMode === "SINGLE_INSTANCE"
            ? pulumi.output(args.subnetIds).apply((ids) => ids.slice(0, 1))
            : pulumi.output(args.subnetIds),
      };
    }

    function createPassword(): random.RandomPassword {
      // Amazon MQ wants 12+ characters without commas, colons or equals signs: letters and digits only.
      return new random.RandomPassword(`${name}-password`, { length: 32, special: false }, { parent });
    }

    function storeCredentials(generated: random.RandomPassword): aws.secretsmanager.Secret {
      return storeSecret(parent, `${name}-credentials`, {
        description: `Amazon MQ RabbitMQ credentials for ${name} (${pulumi.getStack()}), synced into Kubernetes`,
        kmsKeyArn: args.kmsKeyArn,
        value: { username: settings.username, password: generated.result },
        transform: args.transform?.credentialsSecret,
      });
    }

    function createSecurityGroup(): aws.ec2.SecurityGroup {
      return createDataTierSecurityGroup(parent, name, {
        vpcId: args.vpcId,
        clientSecurityGroupId: args.clientSecurityGroupId,
        description: "Amazon MQ RabbitMQ: AMQPS 5671 and management 443 from the EKS cluster only",
        nameTag: `ndt-${pulumi.getStack()}-broker`,
        ports: [
          {
            purpose: "amqps",
            port: AMQPS_PORT,
            description: "RabbitMQ AMQP over TLS from EKS pods and nodes (cluster security group)",
          },
          {
            purpose: "management",
            port: MANAGEMENT_PORT,
            description: "RabbitMQ management API (KEDA) from EKS pods and nodes (cluster security group)",
          },
        ],
        transform: args.transform?.securityGroup,
      });
    }

    function createBroker(): aws.mq.Broker {
      return new aws.mq.Broker(
        `${name}-rabbitmq`,
        applyTransform<aws.mq.BrokerArgs>(
          {
            brokerName: `ndt-${pulumi.getStack()}`,
            engineType: "RabbitMQ",
            engineVersion: args.engineVersion,
            hostInstanceType: args.instanceType,
            deploymentMode: settings.deploymentMode,
            publiclyAccessible: false,
            subnetIds: settings.subnetIds,
            securityGroups: [securityGroup.id],
            // From 3.13 Amazon MQ manages patch versions and requires this on.
            autoMinorVersionUpgrade: true,
            logs: { general: true },
            users: [{ username: settings.username, password: pulumi.secret(password.result) }],
            maintenanceWindowStartTime: { dayOfWeek: "SUNDAY", timeOfDay: "03:30", timeZone: "UTC" },
          },
          args.transform?.broker,
        ),
        { parent },
      );
    }
  }
}
