import type { PlanDocument, PlanResource, PlanValue } from "./document.js";

/** What a reviewer wants to see first per resource type: the settings that differ between environments. */
const keySettings: Record<string, (inputs: PlanResource["inputs"]) => string> = {
  "awsx:ec2:Vpc": (i) =>
    `${i.cidrBlock}, ${i.numberOfAvailabilityZones} AZs, NAT ${field(i, "natGateways", "strategy")}`,
  "eks:index:Cluster": (i) =>
    `Kubernetes ${i.version}, endpoint ${i.endpointPublicAccess ? `public to ${list(i.publicAccessCidrs)}` : "private"}, auth ${i.authenticationMode}`,
  "eks:index:ManagedNodeGroup": (i) =>
    `${list(i.instanceTypes)} ${i.amiType} ${i.capacityType}, ${field(i, "scalingConfig", "minSize")}..${field(i, "scalingConfig", "maxSize")} nodes`,
  "aws:rds/cluster:Cluster": (i) =>
    `${i.engine} ${i.engineVersion}, backups ${i.backupRetentionPeriod} d, deletion protection ${i.deletionProtection ?? false}`,
  "aws:rds/clusterInstance:ClusterInstance": (i) => `${i.instanceClass} in ${i.availabilityZone ?? "any AZ"}`,
  "aws:rds/proxy:Proxy": (i) =>
    `RDS Proxy ${i.engineFamily}, TLS ${i.requireTls ? "required" : "optional"}, IAM auth ${field({ auth: Array.isArray(i.auths) ? (i.auths[0] ?? null) : null }, "auth", "iamAuth") ?? "DISABLED"}`,
  "aws:elasticache/replicationGroup:ReplicationGroup": (i) =>
    `${i.engine} ${i.engineVersion} ${i.nodeType} x${i.numCacheClusters}, multi-AZ ${i.multiAzEnabled ?? false}, failover ${i.automaticFailoverEnabled ?? false}, TLS ${i.transitEncryptionMode ?? i.transitEncryptionEnabled ?? false}`,
  "aws:mq/broker:Broker": (i) =>
    `RabbitMQ ${i.engineVersion} ${i.hostInstanceType} ${i.deploymentMode}, public ${i.publiclyAccessible ?? false}`,
  "aws:cloudfront/distribution:Distribution": (i) => `aliases ${list(i.aliases)}, WAF ${i.webAclId ? "on" : "off"}`,
};

export function renderSummary(plan: PlanDocument): string {
  const lines = [`Plan for ${plan.project} / ${plan.stack}: ${plan.resources.length} resources`, ""];
  const counts = new Map<string, number>();
  for (const resource of plan.resources) counts.set(resource.type, (counts.get(resource.type) ?? 0) + 1);
  const width = Math.max(...[...counts.keys()].map((type) => type.length), 10);
  lines.push("Resources by type:");
  for (const [type, count] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${type.padEnd(width)}  ${String(count).padStart(3)}`);
  }
  lines.push("", "Key settings:");
  for (const resource of plan.resources) {
    const describe = keySettings[resource.type];
    if (describe) lines.push(`  ${resource.name} (${resource.type}): ${describe(resource.inputs)}`);
  }
  lines.push("", "Outputs:");
  for (const [key, value] of Object.entries(plan.outputs))
    lines.push(`  ${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
  return `${lines.join("\n")}\n`;
}

function field(inputs: PlanResource["inputs"], key: string, nested: string): PlanValue {
  const value = inputs[key];
  return value && typeof value === "object" && !Array.isArray(value) ? (value[nested] ?? null) : null;
}

function list(value: PlanValue | undefined): string {
  return Array.isArray(value) ? value.join(", ") : String(value ?? "");
}
