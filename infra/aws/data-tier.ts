import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { applyTransform, type Transform } from "./transform.js";

/** Building blocks the data tiers (Database, Cache, Broker) share: who may connect, and where credentials live. */

export interface ClientPort {
  /** Distinguishes the rule's name when a tier opens several ports (`${name}-${purpose}-from-cluster`). */
  purpose?: string;
  port: number;
  /** What the port carries, for the rule's description (A13: every rule described). */
  description: string;
}

export interface DataTierSecurityGroupArgs {
  vpcId: pulumi.Input<string>;
  /** The one security group allowed in: the cluster's (A13). */
  clientSecurityGroupId: pulumi.Input<string>;
  description: string;
  nameTag: pulumi.Input<string>;
  ports: ClientPort[];
  transform?: Transform<aws.ec2.SecurityGroupArgs>;
}

/**
 * A security group that admits the given ports from the client security group alone. It has no egress rules: a data
 * tier answers connections and never opens any (the provider drops AWS's default allow-all egress).
 */
export function createDataTierSecurityGroup(
  parent: pulumi.Resource,
  name: string,
  args: DataTierSecurityGroupArgs,
): aws.ec2.SecurityGroup {
  const group = new aws.ec2.SecurityGroup(
    `${name}-sg`,
    applyTransform<aws.ec2.SecurityGroupArgs>(
      { vpcId: args.vpcId, description: args.description, tags: { Name: args.nameTag, tier: "data" } },
      args.transform,
    ),
    { parent },
  );
  for (const { purpose, port, description } of args.ports) {
    new aws.vpc.SecurityGroupIngressRule(
      purpose ? `${name}-${purpose}-from-cluster` : `${name}-from-cluster`,
      {
        securityGroupId: group.id,
        referencedSecurityGroupId: args.clientSecurityGroupId,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        description,
      },
      { parent },
    );
  }
  return group;
}

export interface StoredSecretArgs {
  /** The secret's name in Secrets Manager. @default generated from the resource name */
  name?: string;
  description: string;
  kmsKeyArn: pulumi.Input<string>;
  /** The JSON document stored; it reaches the plan and state only as a secret. */
  value: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Days a deleted secret stays recoverable (0: deleted at once). @default 7 */
  recoveryWindowInDays?: number;
  transform?: Transform<aws.secretsmanager.SecretArgs>;
}

/** A Secrets Manager secret under the data key holding one JSON document, for External Secrets to sync (K11). */
export function storeSecret(parent: pulumi.Resource, name: string, args: StoredSecretArgs): aws.secretsmanager.Secret {
  const secret = new aws.secretsmanager.Secret(
    name,
    applyTransform<aws.secretsmanager.SecretArgs>(
      {
        ...(args.name ? { name: args.name } : {}),
        description: args.description,
        kmsKeyId: args.kmsKeyArn,
        recoveryWindowInDays: args.recoveryWindowInDays ?? 7,
      },
      args.transform,
    ),
    { parent },
  );
  new aws.secretsmanager.SecretVersion(
    name,
    { secretId: secret.id, secretString: pulumi.secret(pulumi.jsonStringify(args.value)) },
    { parent },
  );
  return secret;
}
