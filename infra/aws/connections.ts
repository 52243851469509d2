import type * as aws from "@pulumi/aws";
import type * as pulumi from "@pulumi/pulumi";

/**
 * What a component that services consume hands to the Kubernetes side (STYLE.md rule 6): endpoints as plain
 * settings, credentials only as Secrets Manager ARNs that External Secrets syncs into Kubernetes Secrets (K11).
 */

export interface DatabaseConnection {
  /** The writer endpoint (the RDS Proxy endpoint when one fronts the cluster). */
  host: pulumi.Output<string>;
  /** The reader endpoint, for read-only work such as reports. */
  readerHost: pulumi.Output<string>;
  port: number;
  database: string;
  username: string;
  /** Secrets Manager secret holding `{username, password}` (RDS-managed master secret). */
  secretArn: pulumi.Output<string>;
  /** Every client must use TLS: the cluster enforces rds.force_ssl. */
  sslMode: "verify-full";
  /**
   * Set when clients authenticate with IAM instead of the password (an RDS Proxy with IAM auth required fronts the
   * cluster): tokens are signed for `region`, and `grantConnect` lets a role connect as the database user.
   */
  iamAuth?: { region: pulumi.Output<string>; grantConnect: (role: aws.iam.Role) => aws.iam.RolePolicy };
}

export interface CacheConnection {
  host: pulumi.Output<string>;
  readerHost: pulumi.Output<string>;
  port: number;
  tls: true;
  /** Secrets Manager secret holding the AUTH token as `{"token": "..."}`. */
  authSecretArn: pulumi.Output<string>;
}

export interface BrokerConnection {
  /** `amqps://host:5671` without credentials. */
  url: pulumi.Output<string>;
  /** Secrets Manager secret holding `{username, password}`. */
  secretArn: pulumi.Output<string>;
  /** The RabbitMQ management API, for KEDA's queue-length scaler. */
  managementUrl: pulumi.Output<string>;
}

export interface BucketConnection {
  name: pulumi.Output<string>;
  arn: pulumi.Output<string>;
  region: string;
}

/** A grant attaches a least-privilege inline policy to an IRSA role and returns it (A14). */
export type Grant = (role: aws.iam.Role, prefix: string) => aws.iam.RolePolicy;
