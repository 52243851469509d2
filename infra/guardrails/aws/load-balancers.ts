import type { PlanDocument, PlanResource, PlanValue } from "../../../stacks/plan/document.js";
import { asArray, at, stackKey } from "../guardrail.js";
import { type Json, objectsOfKind } from "../k8s/objects.js";
import { asJson, chartName, helmReleases, releaseValues, valueObjects } from "../k8s/releases.js";

/**
 * A13's Kubernetes side: the security-group rules of a LoadBalancer Service's load balancer are made at run time by
 * whichever controller owns the Service, so the plan holds no rule for them; it holds the Service, or the Helm values
 * that render it, and those decide which rules will exist.
 *
 * - EKS's in-tree service controller owns a LoadBalancer Service that names no class and does not ask for the AWS Load
 *   Balancer Controller. With instance targets it opens the Service's NodePorts to 0.0.0.0/0 (the Service's source
 *   ranges) in the nodes' security group: internet-wide ingress on every node, which A13 forbids.
 * - The AWS Load Balancer Controller (`loadBalancerClass: service.k8s.aws/nlb`, or the `aws-load-balancer-type:
 *   external` annotation) with IP targets sends traffic to pod IPs, gives the NLB its own security group (the listener
 *   ports, from the source ranges) and admits that group into the nodes' group on the pod ports only. With instance
 *   targets it would still route through NodePorts.
 *
 * So every LoadBalancer Service must be the AWS Load Balancer Controller's with IP targets, an internet-facing one may
 * listen on TCP 80 and 443 only (A13's exception for the public load balancer), and the controller must be installed,
 * with its port-restricted backend rules left on. The same is read from ingress-nginx's chart values (its controller
 * Service), and from any chart's values block that says `type: LoadBalancer`.
 */

const LBC_CLASS = "service.k8s.aws/nlb";
const LBC_CHART = "aws-load-balancer-controller";
const ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-";
const WEB_PORTS = [80, 443];
const NO_NLB_GROUP =
  "its NLBs get no security group of their own, and the controller admits the listeners' source ranges (0.0.0.0/0) into the cluster's security group on the target ports";

/** One LoadBalancer Service as the plan declares it: as an object, or in a chart's values. */
interface LoadBalancerService {
  resource: PlanResource;
  /** Where in the resource: `""` for a Service object, the values path for a chart (`controller.service`). */
  where: string;
  annotations: Json;
  loadBalancerClass: PlanValue | undefined;
  /** Listener ports with their protocols; undefined when the plan cannot tell (a chart's own port layout). */
  ports: { port: PlanValue | undefined; protocol: string }[] | undefined;
}

type Fail = (resource: PlanResource | string, reason: string) => void;

/** Checks every LoadBalancer Service of the plan, reporting through A13's `fail`. */
export function checkLoadBalancerServices(plan: PlanDocument, fail: Fail): void {
  const services = [...serviceObjects(plan), ...chartServices(plan)];
  const controllers = helmReleases(plan).filter((release) => chartName(release) === LBC_CHART);
  if (services.length > 0 && controllers.length === 0) {
    fail(
      stackKey(plan),
      "LoadBalancer Services but no aws-load-balancer-controller release: nothing provisions them as IP-target NLBs",
    );
  }
  for (const controller of controllers) {
    const values = releaseValues(controller);
    if (at(values, "disableRestrictedSecurityGroupRules") === true)
      fail(
        controller,
        "disableRestrictedSecurityGroupRules: the controller would admit its load balancers into the nodes' security group on every port, not the target ports",
      );
    if (at(values, "controllerConfig.featureGates.NLBSecurityGroup") === false)
      fail(controller, `featureGates.NLBSecurityGroup off: ${NO_NLB_GROUP}`);
  }
  for (const service of services) {
    for (const problem of problemsOf(service))
      fail(service.resource, service.where ? `${service.where}: ${problem}` : problem);
  }
}

function problemsOf(service: LoadBalancerService): string[] {
  const problems: string[] = [];
  const annotation = (name: string): string | undefined => {
    const value = service.annotations[`${ANNOTATION}${name}`];
    return typeof value === "string" ? value : undefined;
  };
  const type = annotation("type");
  const className = service.loadBalancerClass;
  const hasClass = typeof className === "string" && className !== "";
  if (hasClass && className !== LBC_CLASS) {
    problems.push(
      `loadBalancerClass ${className} is not the AWS Load Balancer Controller's (${LBC_CLASS}): A13 cannot tell what its controller opens`,
    );
  } else if (!hasClass && type !== "external" && type !== "nlb-ip") {
    problems.push(
      `not the AWS Load Balancer Controller's (aws-load-balancer-type ${type === undefined ? "unset" : `"${type}"`}, no loadBalancerClass): EKS's in-tree controller would own it and open its NodePorts to 0.0.0.0/0 in the nodes' security group`,
    );
  }
  const targetType = type === "nlb-ip" ? "ip" : annotation("nlb-target-type");
  if (targetType !== "ip") {
    problems.push(
      `targets are ${targetType === undefined ? "unset (instance)" : `"${targetType}"`}, not "ip": the load balancer would reach pods through NodePorts opened in the nodes' security group`,
    );
  }
  if (annotation("disable-nlb-sg") === "true") problems.push(`aws-load-balancer-disable-nlb-sg: ${NO_NLB_GROUP}`);
  // the deprecated `aws-load-balancer-internal: "false"` asks for the same as the scheme annotation
  const internetFacing =
    annotation("scheme") === "internet-facing" ||
    (annotation("scheme") === undefined && annotation("internal") === "false");
  if (internetFacing && service.ports !== undefined) {
    const others = service.ports.filter(
      ({ port, protocol }) => protocol.toUpperCase() !== "TCP" || typeof port !== "number" || !WEB_PORTS.includes(port),
    );
    if (others.length > 0) {
      const listed = others.map(({ port, protocol }) => `${protocol.toUpperCase()} ${String(port)}`).join(", ");
      problems.push(
        `internet-facing and listening on ${listed}: the public load balancer may take the internet on TCP 443 and 80 only`,
      );
    }
  }
  return problems;
}

function serviceObjects(plan: PlanDocument): LoadBalancerService[] {
  return objectsOfKind(plan, "Service")
    .filter((service) => at(service.inputs, "spec.type") === "LoadBalancer")
    .map((service) => ({
      resource: service,
      where: "",
      annotations: asJson(at(service.inputs, "metadata.annotations")),
      loadBalancerClass: at(service.inputs, "spec.loadBalancerClass"),
      ports: asArray(at(service.inputs, "spec.ports")).map((port) => ({
        port: asJson(port).port,
        protocol: String(asJson(port).protocol ?? "TCP"),
      })),
    }));
}

function chartServices(plan: PlanDocument): LoadBalancerService[] {
  return helmReleases(plan).flatMap((release) =>
    chartName(release) === "ingress-nginx" ? ingressNginxServices(release) : valuesServices(release),
  );
}

/**
 * ingress-nginx's controller Services: `controller.service` (type LoadBalancer unless set otherwise, on by default)
 * and the optional `controller.service.internal`. Its listeners are `ports.http`/`ports.https` plus every entry of the
 * top-level `tcp` and `udp` maps, which the chart adds to the same Service.
 */
function ingressNginxServices(release: PlanResource): LoadBalancerService[] {
  const values = releaseValues(release);
  const service = asJson(at(values, "controller.service"));
  if (service.enabled === false) return [];
  const found: LoadBalancerService[] = [];
  const ports = [
    ...(service.enableHttp === false ? [] : [{ port: at(service, "ports.http") ?? 80, protocol: "TCP" }]),
    ...(service.enableHttps === false ? [] : [{ port: at(service, "ports.https") ?? 443, protocol: "TCP" }]),
    ...Object.keys(asJson(values.tcp)).map((port) => ({ port: Number(port), protocol: "TCP" })),
    ...Object.keys(asJson(values.udp)).map((port) => ({ port: Number(port), protocol: "UDP" })),
    // HTTP/3: the https port again, over UDP
    ...(service.enableQuic === true ? [{ port: at(service, "ports.https") ?? 443, protocol: "UDP" }] : []),
  ];
  if ((service.type ?? "LoadBalancer") === "LoadBalancer" && at(service, "external.enabled") !== false) {
    found.push({
      resource: release,
      where: "controller.service",
      annotations: asJson(service.annotations),
      loadBalancerClass: service.loadBalancerClass,
      ports,
    });
  }
  // rendered only when enabled and annotated, and with its own class only (controller-service-internal.yaml)
  const internal = asJson(service.internal);
  const internalAnnotations = asJson(internal.annotations);
  if (
    internal.enabled === true &&
    Object.keys(internalAnnotations).length > 0 &&
    (internal.type ?? service.type ?? "LoadBalancer") === "LoadBalancer"
  ) {
    found.push({
      resource: release,
      where: "controller.service.internal",
      annotations: internalAnnotations,
      loadBalancerClass: internal.loadBalancerClass,
      ports,
    });
  }
  return found;
}

/** Any other chart: every values block that says `type: LoadBalancer` is a Service spec, its ports the chart's own. */
function valuesServices(release: PlanResource): LoadBalancerService[] {
  return [...valueObjects(release.inputs.values)]
    .filter(([, value]) => value.type === "LoadBalancer")
    .map(([path, value]) => ({
      resource: release,
      where: path.join("."),
      annotations: asJson(value.annotations),
      loadBalancerClass: value.loadBalancerClass,
      ports: undefined,
    }));
}
