import { describe, expect, it } from "vitest";
import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { mockIdOf } from "../../../stacks/plan/mocks.js";
import { planOf, resourceOf } from "../../../stacks/plan/testing.js";
import { failing, findingsOf } from "../testing.js";

type Json = Record<string, PlanValue>;
const RELEASE = "kubernetes:helm.sh/v3:Release";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const INGRESS_NGINX = `${RELEASE}::addons-ingress-nginx`;

const reasonsOf = (plan: PlanDocument) => findingsOf(plan, "A13").map((finding) => finding.reason);

/** ingress-nginx's controller Service values in the plan, to edit. */
const nginxService = (plan: PlanDocument): Json =>
  ((resourceOf(plan, RELEASE, "addons-ingress-nginx").inputs.values as Json).controller as Json).service as Json;

/** The annotations addons.ts gave ingress-nginx before the AWS Load Balancer Controller: EKS's in-tree NLB. */
const IN_TREE_NLB = {
  "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
  "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
  "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "tcp",
  "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
};

/** A Service object of the plan, as a component would declare it. */
function service(name: string, spec: Json, annotations: Record<string, string> = {}): PlanResource {
  return {
    type: "kubernetes:core/v1:Service",
    name,
    parent: null,
    inputs: { apiVersion: "v1", kind: "Service", metadata: { name, namespace: "ndt", annotations }, spec },
  };
}

describe("A13: LoadBalancer Services are the AWS Load Balancer Controller's with IP targets", () => {
  it("passes on the prod and dev plans", async () => {
    expect(reasonsOf(await planOf("prod"))).toEqual([]);
    expect(reasonsOf(await planOf("dev"))).toEqual([]);
  });

  it("fails on ingress-nginx's old in-tree NLB annotations, naming the release and both reasons", async () => {
    const plan = await planOf("prod");
    const old = nginxService(plan);
    old.annotations = { ...IN_TREE_NLB };
    delete old.loadBalancerClass;
    expect(failing(plan)).toEqual(["A13"]);
    expect(findingsOf(plan, "A13")).toEqual([
      {
        guardrail: "A13",
        resource: INGRESS_NGINX,
        reason:
          "controller.service: not the AWS Load Balancer Controller's (aws-load-balancer-type \"nlb\", no loadBalancerClass): EKS's in-tree controller would own it and open its NodePorts to 0.0.0.0/0 in the nodes' security group",
      },
      {
        guardrail: "A13",
        resource: INGRESS_NGINX,
        reason:
          'controller.service: targets are unset (instance), not "ip": the load balancer would reach pods through NodePorts opened in the nodes\' security group',
      },
    ]);
  });

  it("fails when the controller's NLB targets instances, or the Service names another class", async () => {
    const instances = await planOf("prod");
    (nginxService(instances).annotations as Json)["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] =
      "instance";
    expect(failing(instances)).toEqual(["A13"]);
    expect(reasonsOf(instances)).toEqual([
      'controller.service: targets are "instance", not "ip": the load balancer would reach pods through NodePorts opened in the nodes\' security group',
    ]);

    const otherClass = await planOf("prod");
    nginxService(otherClass).loadBalancerClass = "example.com/other-lb";
    expect(reasonsOf(otherClass)).toEqual([
      "controller.service: loadBalancerClass example.com/other-lb is not the AWS Load Balancer Controller's (service.k8s.aws/nlb): A13 cannot tell what its controller opens",
    ]);
  });

  it("accepts the controller's class or its `external` annotation alone", async () => {
    const byClass = await planOf("prod");
    delete (nginxService(byClass).annotations as Json)["service.beta.kubernetes.io/aws-load-balancer-type"];
    expect(failing(byClass)).toEqual([]);

    const byAnnotation = await planOf("prod");
    delete nginxService(byAnnotation).loadBalancerClass;
    expect(failing(byAnnotation)).toEqual([]);
  });

  it("fails when the internet-facing NLB listens beyond TCP 80 and 443 (ingress-nginx's tcp/udp maps, other ports)", async () => {
    const plan = await planOf("prod");
    const values = resourceOf(plan, RELEASE, "addons-ingress-nginx").inputs.values as Json;
    values.tcp = { "22": "ndt/bastion:22" };
    values.udp = { "53": "kube-system/kube-dns:53" };
    (nginxService(plan).ports as Json).https = 8443;
    expect(failing(plan)).toEqual(["A13"]);
    expect(reasonsOf(plan)).toEqual([
      "controller.service: internet-facing and listening on TCP 8443, TCP 22, UDP 53: the public load balancer may take the internet on TCP 443 and 80 only",
    ]);
  });

  it("checks Service objects of the plan too: an in-tree one fails A13 (and K10), an IP-target one passes A13", async () => {
    const plan = await planOf("prod");
    plan.resources.push(service("legacy", { type: "LoadBalancer", ports: [{ port: 443 }] }));
    expect(failing(plan)).toEqual(["A13", "K10"]);
    expect(findingsOf(plan, "A13").map((finding) => finding.resource)).toEqual([
      "kubernetes:core/v1:Service::legacy",
      "kubernetes:core/v1:Service::legacy",
    ]);

    const managed = await planOf("prod");
    managed.resources.push(
      service(
        "managed",
        { type: "LoadBalancer", loadBalancerClass: "service.k8s.aws/nlb", ports: [{ port: 443, protocol: "TCP" }] },
        {
          "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
          "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        },
      ),
    );
    expect(failing(managed)).toEqual(["K10"]);
  });

  it("reads any chart's `type: LoadBalancer` values block as a Service", async () => {
    const plan = await planOf("prod");
    const grafana = resourceOf(plan, RELEASE, "addons-kube-prometheus-stack").inputs.values as Json;
    (grafana.grafana as Json).service = { type: "LoadBalancer" };
    expect(failing(plan)).toEqual(["A13"]);
    expect(findingsOf(plan, "A13").map(({ resource, reason }) => `${resource} ${reason.split(":")[0]}`)).toEqual([
      `${RELEASE}::addons-kube-prometheus-stack grafana.service`,
      `${RELEASE}::addons-kube-prometheus-stack grafana.service`,
    ]);
  });

  it("fails without the controller, or with its port-restricted backend rules off", async () => {
    const missing = await planOf("prod");
    missing.resources = missing.resources.filter((resource) => resource.name !== "addons-aws-load-balancer-controller");
    expect(findingsOf(missing, "A13")).toEqual([
      {
        guardrail: "A13",
        resource: "pulumi:pulumi:Stack::ndt-platform-prod",
        reason:
          "LoadBalancer Services but no aws-load-balancer-controller release: nothing provisions them as IP-target NLBs",
      },
    ]);

    const unrestricted = await planOf("prod");
    (
      resourceOf(unrestricted, RELEASE, "addons-aws-load-balancer-controller").inputs.values as Json
    ).disableRestrictedSecurityGroupRules = true;
    expect(findingsOf(unrestricted, "A13").map((finding) => finding.resource)).toEqual([
      `${RELEASE}::addons-aws-load-balancer-controller`,
    ]);
  });
});

describe("A13: LoadBalancer Services, the ways around the NLB's own security group and the port check", () => {
  const ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-";

  it("fails when the NLB is to get no security group of its own: the feature gate off, or the Service's annotation", async () => {
    const gate = await planOf("prod");
    (resourceOf(gate, RELEASE, "addons-aws-load-balancer-controller").inputs.values as Json).controllerConfig = {
      featureGates: { NLBSecurityGroup: false },
    };
    expect(findingsOf(gate, "A13").map(({ resource, reason }) => `${resource} ${reason.split(":")[0]}`)).toEqual([
      `${RELEASE}::addons-aws-load-balancer-controller featureGates.NLBSecurityGroup off`,
    ]);

    const annotated = await planOf("prod");
    (nginxService(annotated).annotations as Json)[`${ANNOTATION}disable-nlb-sg`] = "true";
    expect(reasonsOf(annotated)).toEqual([
      "controller.service: aws-load-balancer-disable-nlb-sg: its NLBs get no security group of their own, and the controller admits the listeners' source ranges (0.0.0.0/0) into the cluster's security group on the target ports",
    ]);
  });

  it('treats the deprecated `aws-load-balancer-internal: "false"` as internet-facing, and HTTP/3 as UDP on the https port', async () => {
    const deprecated = await planOf("prod");
    const service = nginxService(deprecated);
    const annotations = service.annotations as Json;
    delete annotations[`${ANNOTATION}scheme`];
    annotations[`${ANNOTATION}internal`] = "false";
    (deprecated.resources.find((r) => r.name === "addons-ingress-nginx")!.inputs.values as Json).tcp = {
      "22": "ndt/bastion:22",
    };
    expect(reasonsOf(deprecated)).toEqual([
      "controller.service: internet-facing and listening on TCP 22: the public load balancer may take the internet on TCP 443 and 80 only",
    ]);

    const quic = await planOf("prod");
    nginxService(quic).enableQuic = true;
    expect(reasonsOf(quic)).toEqual([
      "controller.service: internet-facing and listening on UDP 443: the public load balancer may take the internet on TCP 443 and 80 only",
    ]);
  });

  it("reads ingress-nginx's internal Service as the chart renders it: only when annotated, with its own class only", async () => {
    const unannotated = await planOf("prod");
    nginxService(unannotated).internal = { enabled: true };
    expect(reasonsOf(unannotated)).toEqual([]);

    const noClass = await planOf("prod");
    nginxService(noClass).internal = {
      enabled: true,
      annotations: { [`${ANNOTATION}scheme`]: "internal", [`${ANNOTATION}nlb-target-type`]: "ip" },
    };
    // the external Service's class is not the internal one's: EKS's in-tree controller would own it
    expect(reasonsOf(noClass)).toEqual([
      "controller.service.internal: not the AWS Load Balancer Controller's (aws-load-balancer-type unset, no loadBalancerClass): EKS's in-tree controller would own it and open its NodePorts to 0.0.0.0/0 in the nodes' security group",
    ]);
  });
});

describe("A13: the cluster's security group never admits the internet", () => {
  /** The prod plan plus a rule on the cluster's security group (every node and pod carries it). */
  const clusterRule = async (inputs: Json) => {
    const plan = await planOf("prod");
    plan.resources.push({
      type: INGRESS,
      name: "cluster-extra",
      parent: null,
      inputs: {
        securityGroupId: String(plan.outputs.clusterSecurityGroupId),
        ipProtocol: "tcp",
        description: "test rule",
        ...inputs,
      },
    });
    return plan;
  };

  it("the plan's own rule on it admits the VPC only", async () => {
    const plan = await planOf("prod");
    expect(resourceOf(plan, INGRESS, "cluster-api-from-vpc").inputs).toMatchObject({
      securityGroupId: plan.outputs.clusterSecurityGroupId,
      cidrIpv4: "10.40.0.0/16",
    });
  });

  it("NodePorts open to the world on it fail, with the reason", async () => {
    const plan = await clusterRule({ cidrIpv4: "0.0.0.0/0", fromPort: 30000, toPort: 32767 });
    expect(failing(plan)).toEqual(["A13"]);
    expect(reasonsOf(plan)).toEqual([
      "rule: ingress open to the internet (0.0.0.0/0) on the cluster's security group, which every node and pod carries: NodePorts and pods would be reachable; public traffic comes in through the load balancer's own group",
    ]);
  });

  it("443 from the world fails on it even when a public load balancer carries it", async () => {
    const plan = await clusterRule({ cidrIpv4: "0.0.0.0/0", fromPort: 443, toPort: 443 });
    plan.resources.push({
      type: "aws:lb/loadBalancer:LoadBalancer",
      name: "shared",
      parent: null,
      inputs: {
        internal: false,
        loadBalancerType: "network",
        securityGroups: [String(plan.outputs.clusterSecurityGroupId)],
      },
    });
    expect(failing(plan)).toEqual(["A13"]);
    expect(findingsOf(plan, "A13").map((finding) => finding.resource)).toEqual([
      "aws:lb/loadBalancer:LoadBalancer::shared",
      `${INGRESS}::cluster-extra`,
    ]);
  });

  it("a public load balancer with a group of its own may still take 443 (the rest of A13 is unchanged)", async () => {
    const plan = await planOf("prod");
    plan.resources.push(
      { type: "aws:ec2/securityGroup:SecurityGroup", name: "edge-sg", parent: null, inputs: { description: "edge" } },
      {
        type: INGRESS,
        name: "edge-https",
        parent: null,
        inputs: {
          securityGroupId: mockIdOf("edge-sg"),
          ipProtocol: "tcp",
          cidrIpv4: "0.0.0.0/0",
          fromPort: 443,
          toPort: 443,
          description: "HTTPS from clients",
        },
      },
      {
        type: "aws:lb/loadBalancer:LoadBalancer",
        name: "edge",
        parent: null,
        inputs: { internal: false, securityGroups: [mockIdOf("edge-sg")] },
      },
    );
    expect(failing(plan)).toEqual([]);
  });
});
