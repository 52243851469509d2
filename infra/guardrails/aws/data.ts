import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { mockIdOf } from "../../../stacks/plan/mocks.js";
import { asArray, findingsFor, type Guardrail, inputAt, ofType, stackKey } from "../guardrail.js";
import { checkLoadBalancerServices } from "./load-balancers.js";

/**
 * The data tiers' lines: A7 (Aurora), A8 (Aurora instances), A9 (ElastiCache), A10 (Amazon MQ) and A13 (security
 * groups across the whole plan, and the LoadBalancer Services whose groups controllers make: load-balancers.ts).
 * Resources refer to each other by id; in a plan every id is the mock's (`mockIdOf(name)`), so a reference is
 * resolved by comparing against that.
 */

const AURORA = "aws:rds/cluster:Cluster";
const AURORA_INSTANCE = "aws:rds/clusterInstance:ClusterInstance";
const PARAMETER_GROUP = "aws:rds/clusterParameterGroup:ClusterParameterGroup";
const RDS_INSTANCE = "aws:rds/instance:Instance";
const RDS_PROXY = "aws:rds/proxy:Proxy";
const RDS_PROXY_ENDPOINT = "aws:rds/proxyEndpoint:ProxyEndpoint";
const REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup";
const CACHE_CLUSTER = "aws:elasticache/cluster:Cluster";
const BROKER = "aws:mq/broker:Broker";
const KMS_KEY = "aws:kms/key:Key";
const SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup";
const SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule";
const INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule";
const LOAD_BALANCERS = ["aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"];
/** Address space that is not the internet's: RFC 1918 and RFC 4193 (unique local IPv6); the VPC's own CIDRs join it. */
const PRIVATE_CIDRS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];
/**
 * Prefixes this short or shorter, outside private space, read as "the world": `0.0.0.0/1` + `128.0.0.0/1` open as much
 * as `0.0.0.0/0`, and no client or partner range needs a /8 (IPv4) or a /32 (IPv6, a whole ISP allocation).
 */
const WORLD_PREFIX = { 4: 8, 6: 32 } as const;
const VPCS: [type: string, cidrInput: string][] = [
  ["awsx:ec2:Vpc", "cidrBlock"],
  ["aws:ec2/vpc:Vpc", "cidrBlock"],
  ["aws:ec2/vpcIpv4CidrBlockAssociation:VpcIpv4CidrBlockAssociation", "cidrBlock"],
];
/** Provider defaults that say nothing about what a group is for. */
const DEFAULT_DESCRIPTIONS = new Set(["Managed by Pulumi", "Managed by Terraform"]);

/** Whether a resource's input refers to `target` (by its mock id, or by the name it was given). */
function refersTo(value: PlanValue | undefined, target: PlanResource, nameInput = "name"): boolean {
  if (typeof value !== "string") return false;
  return value === mockIdOf(target.name) || value === target.inputs[nameInput];
}

/** A customer-managed key: the ARN of one of the plan's own KMS keys (not an AWS-managed `alias/aws/...`). */
function isCustomerKey(plan: PlanDocument, value: PlanValue | undefined): boolean {
  if (typeof value !== "string" || !value.startsWith("arn:aws:kms:")) return false;
  return ofType(plan, KMS_KEY).some((key) => value.endsWith(`:key/${key.name}`) || refersTo(value, key));
}

function isTrue(value: PlanValue | undefined): boolean {
  return value === true || value === "true";
}

export const a7Aurora: Guardrail = {
  id: "A7",
  title:
    "Aurora: CMK storage encryption, deletion protection (prod), IAM auth, backups ≥ 7 days (prod; dev ≥ 1), PostgreSQL log export, managed master password, rds.force_ssl = 1",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A7");
    const clusters = ofType(plan, AURORA);
    if (clusters.length === 0) fail(stackKey(plan), "no Aurora cluster in the plan");
    for (const cluster of clusters) {
      if (!isTrue(inputAt(cluster, "storageEncrypted"))) fail(cluster, "storage is not encrypted");
      else if (!isCustomerKey(plan, inputAt(cluster, "kmsKeyId")))
        fail(cluster, "storage is not encrypted with a customer-managed key");
      if (environment === "prod" && !isTrue(inputAt(cluster, "deletionProtection")))
        fail(cluster, "deletion protection is off");
      if (!isTrue(inputAt(cluster, "iamDatabaseAuthenticationEnabled")))
        fail(cluster, "IAM database authentication is off");
      const minimumBackupDays = environment === "prod" ? 7 : 1;
      const backupDays = Number(inputAt(cluster, "backupRetentionPeriod") ?? 1);
      if (!(backupDays >= minimumBackupDays))
        fail(cluster, `backups kept ${backupDays} days, below the ${environment} minimum of ${minimumBackupDays}`);
      if (!asArray(inputAt(cluster, "enabledCloudwatchLogsExports")).includes("postgresql"))
        fail(cluster, "PostgreSQL logs are not exported to CloudWatch");
      if (!isTrue(inputAt(cluster, "manageMasterUserPassword")) || inputAt(cluster, "masterPassword") != null)
        fail(cluster, "the master password is not managed by Secrets Manager");
      const groupRef = inputAt(cluster, "dbClusterParameterGroupName");
      const group = ofType(plan, PARAMETER_GROUP).find((candidate) => refersTo(groupRef, candidate));
      const forceSsl = asArray(group ? inputAt(group, "parameters") : undefined).some(
        (parameter) =>
          typeof parameter === "object" &&
          parameter !== null &&
          !Array.isArray(parameter) &&
          parameter.name === "rds.force_ssl" &&
          String(parameter.value) === "1",
      );
      if (!forceSsl) fail(cluster, "rds.force_ssl is not 1 in its cluster parameter group: clients may skip TLS");
    }
    return findings;
  },
};

export const a8AuroraInstances: Guardrail = {
  id: "A8",
  title:
    "Aurora instances: not publicly accessible, Performance Insights on (prod, CMK), ≥ 2 instances in ≥ 2 AZs (prod)",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A8");
    const instances = ofType(plan, AURORA_INSTANCE);
    for (const instance of instances) {
      if (inputAt(instance, "publiclyAccessible") !== false) fail(instance, "instance may be publicly accessible");
      if (environment !== "prod") continue;
      if (!isTrue(inputAt(instance, "performanceInsightsEnabled"))) fail(instance, "Performance Insights is off");
      else if (!isCustomerKey(plan, inputAt(instance, "performanceInsightsKmsKeyId")))
        fail(instance, "Performance Insights is not encrypted with a customer-managed key");
    }
    if (environment !== "prod") return findings;
    for (const cluster of ofType(plan, AURORA)) {
      const members = instances.filter((instance) =>
        refersTo(inputAt(instance, "clusterIdentifier"), cluster, "clusterIdentifier"),
      );
      const zones = new Set(
        members.map((member) => inputAt(member, "availabilityZone")).filter((zone) => typeof zone === "string"),
      );
      if (members.length < 2) fail(cluster, `${members.length} instance(s): prod needs a writer and a reader`);
      else if (zones.size < 2) fail(cluster, `instances span ${zones.size} AZ(s): prod needs at least 2`);
    }
    return findings;
  },
};

export const a9ElastiCache: Guardrail = {
  id: "A9",
  title:
    "ElastiCache: at-rest and in-transit encryption, AUTH token, automatic failover and Multi-AZ with ≥ 2 nodes (prod)",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A9");
    for (const cluster of ofType(plan, CACHE_CLUSTER)) {
      if (inputAt(cluster, "replicationGroupId") == null)
        fail(cluster, "a standalone cache cluster: no encryption, AUTH or failover; use a replication group");
    }
    for (const group of ofType(plan, REPLICATION_GROUP)) {
      if (!isTrue(inputAt(group, "atRestEncryptionEnabled"))) fail(group, "at-rest encryption is off");
      if (!isTrue(inputAt(group, "transitEncryptionEnabled"))) fail(group, "in-transit encryption (TLS) is off");
      else if (inputAt(group, "transitEncryptionMode") === "preferred")
        fail(group, "in-transit encryption is only preferred: plaintext clients are accepted");
      const token = inputAt(group, "authToken");
      const hasAuth =
        (typeof token === "string" && token.length > 0) || asArray(inputAt(group, "userGroupIds")).length > 0;
      if (!hasAuth) fail(group, "no AUTH token (or RBAC user group): any client in reach can connect");
      if (environment !== "prod") continue;
      const replicas = inputAt(group, "replicasPerNodeGroup");
      const nodes = Number(
        inputAt(group, "numCacheClusters") ??
          Number(inputAt(group, "numNodeGroups") ?? 1) * (Number(typeof replicas === "number" ? replicas : 0) + 1),
      );
      if (!isTrue(inputAt(group, "automaticFailoverEnabled"))) fail(group, "automatic failover is off");
      if (!isTrue(inputAt(group, "multiAzEnabled"))) fail(group, "Multi-AZ is off");
      if (!(nodes >= 2)) fail(group, `${nodes} node(s): prod needs a replica to fail over to`);
    }
    return findings;
  },
};

/** `3.13`, `3.13.7`, `4.0` → comparable [major, minor]. */
function versionOf(value: PlanValue | undefined): [number, number] | undefined {
  const match = typeof value === "string" ? /^(\d+)\.(\d+)/.exec(value) : null;
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

export const a10AmazonMq: Guardrail = {
  id: "A10",
  title:
    "Amazon MQ RabbitMQ: not publicly accessible, general logs on, CLUSTER_MULTI_AZ (prod), engine ≥ 3.13, minor-version auto upgrade",
  check({ plan, environment }) {
    const { findings, fail } = findingsFor("A10");
    const brokers = ofType(plan, BROKER).filter(
      (broker) => String(inputAt(broker, "engineType") ?? "").toLowerCase() === "rabbitmq",
    );
    if (brokers.length === 0) fail(stackKey(plan), "no Amazon MQ RabbitMQ broker in the plan");
    for (const broker of brokers) {
      if (inputAt(broker, "publiclyAccessible") !== false) fail(broker, "broker may be publicly accessible");
      if (!isTrue(inputAt(broker, "logs.general"))) fail(broker, "general logs are off");
      if (environment === "prod" && inputAt(broker, "deploymentMode") !== "CLUSTER_MULTI_AZ")
        fail(broker, `deployment mode ${String(inputAt(broker, "deploymentMode"))}: prod needs CLUSTER_MULTI_AZ`);
      const version = versionOf(inputAt(broker, "engineVersion"));
      if (!version || version[0] < 3 || (version[0] === 3 && version[1] < 13))
        fail(broker, `RabbitMQ ${String(inputAt(broker, "engineVersion"))} is older than 3.13`);
      if (!isTrue(inputAt(broker, "autoMinorVersionUpgrade"))) fail(broker, "minor-version auto upgrade is off");
    }
    return findings;
  },
};

/** One ingress or egress permission, wherever it is declared (inline on the group or as its own resource). */
interface Rule {
  resource: PlanResource;
  /** How the finding names the rule: the resource, plus the inline entry's position when inline. */
  label: string;
  groupId: PlanValue | undefined;
  direction: "ingress" | "egress";
  description: PlanValue | undefined;
  cidrs: string[];
  groups: string[];
  prefixLists: string[];
  self: boolean;
  protocol: string;
  fromPort: number | undefined;
  toPort: number | undefined;
}

function strings(...values: (PlanValue | undefined)[]): string[] {
  return values.flatMap((value) =>
    Array.isArray(value) ? value.filter((v) => typeof v === "string") : typeof value === "string" ? [value] : [],
  );
}

function numberOrUndefined(value: PlanValue | undefined): number | undefined {
  return typeof value === "number" ? value : undefined;
}

function rulesOf(plan: PlanDocument): Rule[] {
  const rules: Rule[] = [];
  for (const group of ofType(plan, SECURITY_GROUP)) {
    for (const direction of ["ingress", "egress"] as const) {
      for (const [index, entry] of asArray(inputAt(group, direction)).entries()) {
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) continue;
        rules.push({
          resource: group,
          label: `${direction}[${index}]`,
          groupId: mockIdOf(group.name),
          direction,
          description: entry.description,
          cidrs: strings(entry.cidrBlocks, entry.ipv6CidrBlocks),
          groups: strings(entry.securityGroups),
          prefixLists: strings(entry.prefixListIds),
          self: isTrue(entry.self),
          protocol: String(entry.protocol ?? ""),
          fromPort: numberOrUndefined(entry.fromPort),
          toPort: numberOrUndefined(entry.toPort),
        });
      }
    }
  }
  for (const rule of ofType(plan, SECURITY_GROUP_RULE)) {
    rules.push({
      resource: rule,
      label: "rule",
      groupId: inputAt(rule, "securityGroupId"),
      direction: inputAt(rule, "type") === "egress" ? "egress" : "ingress",
      description: inputAt(rule, "description"),
      cidrs: strings(inputAt(rule, "cidrBlocks"), inputAt(rule, "ipv6CidrBlocks")),
      groups: strings(inputAt(rule, "sourceSecurityGroupId")),
      prefixLists: strings(inputAt(rule, "prefixListIds")),
      self: isTrue(inputAt(rule, "self")),
      protocol: String(inputAt(rule, "protocol") ?? ""),
      fromPort: numberOrUndefined(inputAt(rule, "fromPort")),
      toPort: numberOrUndefined(inputAt(rule, "toPort")),
    });
  }
  for (const [type, direction] of [
    [INGRESS_RULE, "ingress"],
    [EGRESS_RULE, "egress"],
  ] as const) {
    for (const rule of ofType(plan, type)) {
      rules.push({
        resource: rule,
        label: "rule",
        groupId: inputAt(rule, "securityGroupId"),
        direction,
        description: inputAt(rule, "description"),
        cidrs: strings(inputAt(rule, "cidrIpv4"), inputAt(rule, "cidrIpv6")),
        groups: strings(inputAt(rule, "referencedSecurityGroupId")),
        prefixLists: strings(inputAt(rule, "prefixListId")),
        self: false,
        protocol: String(inputAt(rule, "ipProtocol") ?? ""),
        fromPort: numberOrUndefined(inputAt(rule, "fromPort")),
        toPort: numberOrUndefined(inputAt(rule, "toPort")),
      });
    }
  }
  return rules;
}

/** Security group ids attached to the given resource types' `inputName` lists. */
function groupIdsUsedBy(plan: PlanDocument, uses: [type: string, inputName: string][]): Set<string> {
  return new Set(uses.flatMap(([type, input]) => ofType(plan, type).flatMap((r) => strings(inputAt(r, input)))));
}

/** An address block: version, network address as a number, and prefix length. */
interface Cidr {
  version: 4 | 6;
  network: bigint;
  prefix: number;
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) <= 255)) return undefined;
  return parts.reduce((address, part) => (address << 8n) | BigInt(part), 0n);
}

function parseIpv6(text: string): bigint | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined): string[] => (half ? half.split(":") : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(Math.max(missing, 0)).fill("0"), ...tail];
  if (!all.every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return undefined;
  return all.reduce((address, group) => (address << 16n) | BigInt(`0x${group}`), 0n);
}

function parseCidr(text: string): Cidr | undefined {
  const [address = "", prefixText, ...rest] = text.trim().split("/");
  const version = address.includes(":") ? 6 : 4;
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (rest.length > 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  const parsed = version === 4 ? parseIpv4(address) : parseIpv6(address);
  if (parsed === undefined) return undefined;
  const host = BigInt(bits - prefix);
  return { version, network: (parsed >> host) << host, prefix };
}

function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.version !== inner.version || inner.prefix < outer.prefix) return false;
  const host = BigInt((outer.version === 4 ? 32 : 128) - outer.prefix);
  return inner.network >> host === outer.network >> host;
}

/** Why an ingress CIDR counts as the internet, or undefined when it is a bounded or private range. */
function worldProblem(text: string, privateSpace: Cidr[]): string | undefined {
  const cidr = parseCidr(text);
  if (!cidr) return `ingress from ${text}, which is not a CIDR this check can read`;
  if (cidr.prefix > WORLD_PREFIX[cidr.version]) return undefined;
  if (privateSpace.some((space) => contains(space, cidr))) return undefined;
  return `ingress open to the internet (${text})`;
}

/** Open to the world only on web ports (a TLS listener and its HTTP redirect), TCP. */
function onlyWebPorts(rule: Rule): boolean {
  const protocol = rule.protocol.toLowerCase();
  if (protocol !== "tcp" && protocol !== "6") return false;
  return (rule.fromPort === 443 && rule.toPort === 443) || (rule.fromPort === 80 && rule.toPort === 80);
}

/**
 * A13 over the rules the plan declares, and over the ones controllers will make at run time from what the plan
 * declares: the cluster's security group (every node and pod carries it) never admits the internet, not even on
 * 443/80 and not through a load balancer that shares it; and every LoadBalancer Service is the AWS Load Balancer
 * Controller's with IP targets (load-balancers.ts), since EKS's in-tree controller would open NodePorts to 0.0.0.0/0
 * in the nodes' group where no plan shows it.
 */
export const a13SecurityGroups: Guardrail = {
  id: "A13",
  title:
    "Security groups: every rule described; no 0.0.0.0/0 (or other internet-wide) ingress except the public load balancer on 443/80, never on the cluster's group; LoadBalancer Services are the AWS Load Balancer Controller's with IP targets; data tiers accept only the cluster's security groups",
  check({ plan }) {
    const { findings, fail } = findingsFor("A13");
    const rules = rulesOf(plan);
    for (const group of ofType(plan, SECURITY_GROUP)) {
      const description = inputAt(group, "description");
      if (typeof description !== "string" || description.trim() === "" || DEFAULT_DESCRIPTIONS.has(description))
        fail(group, "security group has no description of its purpose");
    }
    for (const rule of rules) {
      if (typeof rule.description !== "string" || rule.description.trim() === "")
        fail(rule.resource, `${rule.label}: rule has no description`);
    }

    // The cluster's security group is an EKS output: the plan names it among the stack outputs.
    const clusterGroup = plan.outputs.clusterSecurityGroupId;
    const isClusterGroup = (groupId: string): boolean => typeof clusterGroup === "string" && groupId === clusterGroup;
    const publicLoadBalancers = LOAD_BALANCERS.flatMap((type) => ofType(plan, type)).filter(
      (balancer) => inputAt(balancer, "internal") !== true,
    );
    for (const balancer of publicLoadBalancers) {
      if (strings(inputAt(balancer, "securityGroups")).some(isClusterGroup))
        fail(
          balancer,
          "internet-facing load balancer carries the cluster's security group: it needs a group of its own",
        );
    }
    // The cluster's group never counts as the public load balancer's, whatever carries it.
    const publicLoadBalancerGroups = new Set(
      publicLoadBalancers
        .flatMap((balancer) => strings(inputAt(balancer, "securityGroups")))
        .filter((groupId) => !isClusterGroup(groupId)),
    );
    const privateSpace = [
      ...PRIVATE_CIDRS,
      ...VPCS.flatMap(([type, input]) => ofType(plan, type).flatMap((vpc) => strings(inputAt(vpc, input)))),
    ].flatMap((text) => parseCidr(text) ?? []);
    for (const rule of rules) {
      if (rule.direction !== "ingress") continue;
      const problems = rule.cidrs.flatMap((cidr) => worldProblem(cidr, privateSpace) ?? []);
      if (problems.length === 0) continue;
      const groupId = typeof rule.groupId === "string" ? rule.groupId : "";
      if (isClusterGroup(groupId)) {
        for (const problem of problems)
          fail(
            rule.resource,
            `${rule.label}: ${problem} on the cluster's security group, which every node and pod carries: NodePorts and pods would be reachable; public traffic comes in through the load balancer's own group`,
          );
      } else if (!publicLoadBalancerGroups.has(groupId)) {
        for (const problem of problems) fail(rule.resource, `${rule.label}: ${problem}`);
      } else if (!onlyWebPorts(rule))
        fail(rule.resource, `${rule.label}: the public load balancer is open beyond TCP 443 and 80`);
    }

    checkLoadBalancerServices(plan, fail);

    const dataTierGroups = groupIdsUsedBy(plan, [
      [AURORA, "vpcSecurityGroupIds"],
      [RDS_INSTANCE, "vpcSecurityGroupIds"],
      [RDS_PROXY, "vpcSecurityGroupIds"],
      [RDS_PROXY_ENDPOINT, "vpcSecurityGroupIds"],
      [REPLICATION_GROUP, "securityGroupIds"],
      [CACHE_CLUSTER, "securityGroupIds"],
      [BROKER, "securityGroups"],
    ]);
    if (dataTierGroups.size > 0 && typeof clusterGroup !== "string") {
      fail(stackKey(plan), "no clusterSecurityGroupId stack output: cannot tell which group data tiers may admit");
      return findings;
    }
    // An RDS Proxy is the database's own front door: the database may admit it as well as the cluster.
    const allowed = new Set([String(clusterGroup), ...groupIdsUsedBy(plan, [[RDS_PROXY, "vpcSecurityGroupIds"]])]);
    for (const rule of rules) {
      if (rule.direction !== "ingress" || typeof rule.groupId !== "string" || !dataTierGroups.has(rule.groupId))
        continue;
      if (rule.cidrs.length > 0 || rule.prefixLists.length > 0)
        fail(
          rule.resource,
          `${rule.label}: data tier admits addresses (${[...rule.cidrs, ...rule.prefixLists].join(", ")}), not the cluster's security group`,
        );
      if (rule.self) fail(rule.resource, `${rule.label}: data tier admits itself`);
      for (const source of rule.groups) {
        if (!allowed.has(source))
          fail(rule.resource, `${rule.label}: data tier admits ${source}, not the cluster's security group`);
      }
    }
    return findings;
  },
};

export const dataGuardrails: Guardrail[] = [a7Aurora, a8AuroraInstances, a9ElastiCache, a10AmazonMq, a13SecurityGroups];
