import type { PlanDocument, PlanResource, PlanValue } from "./document.js";
import { resourceKey } from "./document.js";

/**
 * The difference between two plans: what a pull request would add, remove and change, with the input paths that
 * changed and whether a change forces the provider to replace the resource.
 */

export interface InputChange {
  /** Dotted path into the inputs, e.g. `scalingConfig.minSize` or `spec.template.spec.containers.0.image`. */
  path: string;
  before: PlanValue | undefined;
  after: PlanValue | undefined;
}

export interface ResourceChange {
  key: string;
  type: string;
  name: string;
  changes: InputChange[];
  /** The changed paths that make AWS destroy and recreate the resource (data loss or downtime where it holds state). */
  replacedBy: string[];
}

export interface PlanDiff {
  stack: string;
  added: PlanResource[];
  removed: PlanResource[];
  changed: ResourceChange[];
  outputs: InputChange[];
}

/**
 * Input properties whose change forces a replacement, for the resources where a replacement matters: those that
 * hold data or carry the platform (database, cache, broker, cluster, node groups, buckets). Taken from the AWS
 * provider schema's `forceNew` markings and the EKS/awsx component docs; the real `pulumi preview` on pull requests
 * (where credentials exist) is the authority, this table is the offline early warning.
 */
export const REPLACING_INPUTS: Readonly<Record<string, readonly string[]>> = {
  "aws:rds/cluster:Cluster": [
    "clusterIdentifier",
    "clusterIdentifierPrefix",
    "engine",
    "engineMode",
    "databaseName",
    "masterUsername",
    "storageEncrypted",
    "kmsKeyId",
    "availabilityZones",
    "dbSubnetGroupName",
    "snapshotIdentifier",
  ],
  "aws:rds/clusterInstance:ClusterInstance": [
    "identifier",
    "identifierPrefix",
    "engine",
    "clusterIdentifier",
    "dbSubnetGroupName",
    "availabilityZone",
  ],
  "aws:rds/proxy:Proxy": ["name", "engineFamily", "vpcSubnetIds"],
  "aws:elasticache/replicationGroup:ReplicationGroup": [
    "replicationGroupId",
    "atRestEncryptionEnabled",
    "kmsKeyId",
    "subnetGroupName",
    "port",
    "snapshotArns",
    "snapshotName",
    "dataTieringEnabled",
  ],
  "aws:mq/broker:Broker": [
    "brokerName",
    "engineType",
    "deploymentMode",
    "storageType",
    "subnetIds",
    "securityGroups",
    "publiclyAccessible",
    "encryptionOptions",
    "authenticationStrategy",
  ],
  "eks:index:Cluster": [
    "name",
    "vpcId",
    "privateSubnetIds",
    "publicSubnetIds",
    "subnetIds",
    "encryptionConfigKeyArn",
    "kubernetesServiceIpAddressRange",
    "ipFamily",
    "serviceRole",
  ],
  "eks:index:ManagedNodeGroup": [
    "amiType",
    "capacityType",
    "instanceTypes",
    "diskSize",
    "subnetIds",
    "nodeGroupName",
    "nodeGroupNamePrefix",
    "nodeRole",
    "nodeRoleArn",
    "remoteAccess",
  ],
  "awsx:ec2:Vpc": ["cidrBlock", "numberOfAvailabilityZones", "availabilityZoneNames", "subnetSpecs", "subnetStrategy"],
  "aws:s3/bucket:Bucket": ["bucket", "bucketPrefix", "objectLockEnabled"],
  "aws:kms/key:Key": ["customerMasterKeySpec", "keyUsage", "multiRegion"],
};

export function diffPlans(base: PlanDocument, head: PlanDocument): PlanDiff {
  const baseByKey = new Map(base.resources.map((resource) => [resourceKey(resource), resource]));
  const headByKey = new Map(head.resources.map((resource) => [resourceKey(resource), resource]));
  const added = head.resources.filter((resource) => !baseByKey.has(resourceKey(resource)));
  const removed = base.resources.filter((resource) => !headByKey.has(resourceKey(resource)));
  const changed: ResourceChange[] = [];
  for (const resource of head.resources) {
    const key = resourceKey(resource);
    const before = baseByKey.get(key);
    if (!before) continue;
    const changes = diffValues(before.inputs, resource.inputs, "");
    if (before.parent !== resource.parent)
      changes.unshift({ path: "(parent)", before: before.parent, after: resource.parent });
    if (changes.length === 0) continue;
    const replacing = REPLACING_INPUTS[resource.type] ?? [];
    const replacedBy = changes
      .map((change) => change.path)
      .filter((path) => replacing.includes(path.split(".")[0] ?? path));
    changed.push({ key, type: resource.type, name: resource.name, changes, replacedBy: [...new Set(replacedBy)] });
  }
  return { stack: head.stack, added, removed, changed, outputs: diffValues(base.outputs, head.outputs, "") };
}

export function isEmpty(diff: PlanDiff): boolean {
  return diff.added.length === 0 && diff.removed.length === 0 && diff.changed.length === 0 && diff.outputs.length === 0;
}

/** Leaf-level differences; arrays compare element by element so a changed list item names its index. */
function diffValues(before: PlanValue | undefined, after: PlanValue | undefined, path: string): InputChange[] {
  if (isRecord(before) && isRecord(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => diffValues(before[key], after[key], path ? `${path}.${key}` : key));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const length = Math.max(before.length, after.length);
    return Array.from({ length }, (_, index) => diffValues(before[index], after[index], `${path}.${index}`)).flat();
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path: path || "(value)", before, after }];
}

function isRecord(value: PlanValue | undefined): value is { [key: string]: PlanValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A pull-request comment must stay under GitHub's 65,536-character limit; keep a margin. */
export const MAX_COMMENT_CHARS = 60_000;

export function renderDiffMarkdown(diff: PlanDiff, baseRef: string): string {
  const replacements = diff.changed.filter((change) => change.replacedBy.length > 0);
  const summary = isEmpty(diff)
    ? "No changes."
    : `${diff.added.length} to add, ${diff.changed.length} to change (${replacements.length} replacement${replacements.length === 1 ? "" : "s"}), ${diff.removed.length} to remove.`;
  const head = [`### Offline plan diff: \`${diff.stack}\` (base \`${baseRef}\`)`, "", `**${summary}**`];
  if (isEmpty(diff)) return `${head.join("\n")}\n`;

  const table = ["", "| | resource | type | what changes |", "|---|---|---|---|"];
  for (const change of diff.changed) {
    const mark = change.replacedBy.length > 0 ? "⚠️ replace" : "~ update";
    const paths = change.changes.map((item) => item.path);
    const shown = paths.slice(0, 4).join(", ") + (paths.length > 4 ? `, … (${paths.length} paths)` : "");
    const why = change.replacedBy.length > 0 ? ` — **replaced by** ${change.replacedBy.join(", ")}` : "";
    table.push(`| ${mark} | \`${change.name}\` | \`${change.type}\` | ${escapeCell(shown)}${why} |`);
  }
  for (const resource of diff.added) table.push(`| + add | \`${resource.name}\` | \`${resource.type}\` | |`);
  for (const resource of diff.removed) table.push(`| − remove | \`${resource.name}\` | \`${resource.type}\` | |`);

  const details: string[] = [];
  for (const change of diff.changed) {
    details.push(`\n**\`${change.key}\`**\n`, "```diff");
    for (const item of change.changes) {
      details.push(`- ${item.path}: ${render(item.before)}`, `+ ${item.path}: ${render(item.after)}`);
    }
    details.push("```");
  }
  if (diff.outputs.length > 0) {
    details.push("\n**Stack outputs**\n", "```diff");
    for (const item of diff.outputs)
      details.push(`- ${item.path}: ${render(item.before)}`, `+ ${item.path}: ${render(item.after)}`);
    details.push("```");
  }

  const body = [...head, ...table, "", ""].join("\n");
  const foot = "\nSecrets show as `[secret]` on both sides: a changed secret value is not visible here.\n";
  if (details.length === 0) return `${body}${foot}`;
  let folded = `<details><summary>Changed inputs</summary>\n${details.join("\n")}\n\n</details>\n`;
  const room = MAX_COMMENT_CHARS - body.length - foot.length;
  if (folded.length > room) {
    const note =
      "\n… (truncated to fit a pull-request comment; run `npm run plan:diff` locally for the whole diff)\n\n</details>\n";
    folded = `${folded.slice(0, Math.max(0, room - note.length))}${note}`;
  }
  return `${body}${folded}${foot}`;
}

function render(value: PlanValue | undefined): string {
  const text = value === undefined ? "(absent)" : JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|");
}
