import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { storeSecret } from "./data-tier.js";

/** Where a service's own secret lives in Secrets Manager: the one path its ExternalSecret reads (K11). */
export function appSecretPath(environment: string, secret: string): string {
  return `ndt/${environment}/${secret}`;
}

/** The JSON property holding the value, as the ExternalSecret's `remoteRef.property` reads it. */
export const APP_SECRET_PROPERTY = "value";

export interface AppSecretsArgs {
  environment: "dev" | "prod";
  /**
   * The secrets the topology's services read (`secrets` of each service), e.g. "auth/signing-key", or an add-on's
   * (the cluster add-ons' "grafana/admin-password").
   */
  secrets: readonly string[];
  /** Customer-managed key the secrets are encrypted with (A15). */
  kmsKeyArn: pulumi.Input<string>;
}

/**
 * The secrets the services' own code needs (auth's signing-key secret, which encrypts its private signing keys at
 * rest), generated here so a fresh `pulumi up` yields pods that start: 64 random letters and digits each, stored as
 * `{"value": …}` under `ndt/<environment>/<secret>` with the data key. The value lives in Pulumi state as a secret
 * and is generated once: later updates keep it. A deleted prod secret stays recoverable for 7 days; dev's is
 * deleted at once, so a destroyed dev stack can be brought up again under the same names.
 */
export class AppSecrets extends pulumi.ComponentResource {
  constructor(name: string, args: AppSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("ndt:aws:AppSecrets", name, {}, opts);
    for (const secret of new Set(args.secrets)) {
      const id = `${name}-${secret.replaceAll("/", "-")}`;
      const value = new random.RandomPassword(id, { length: 64, special: false }, { parent: this });
      storeSecret(this, id, {
        name: appSecretPath(args.environment, secret),
        description: `${secret} of the ${args.environment} platform, synced into Kubernetes by External Secrets`,
        kmsKeyArn: args.kmsKeyArn,
        value: { [APP_SECRET_PROPERTY]: value.result },
        recoveryWindowInDays: args.environment === "prod" ? 7 : 0,
      });
    }
    this.registerOutputs({});
  }
}
