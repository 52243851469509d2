import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BUNDLED_MODEL_OPTIONS } from "../apps/detector/src/inference/bundled.js";
import { parseStackConfig, StackConfigError } from "./config.js";
import { readStackFile } from "./plan/stack-file.js";

const prodConfig = (): Record<string, string> => readStackFile("prod").config;

function problemsOf(config: Record<string, string>): string[] {
  try {
    parseStackConfig(config);
  } catch (error) {
    if (error instanceof StackConfigError) return error.problems.map((problem) => `${problem.path}: ${problem.reason}`);
    throw error;
  }
  return [];
}

function editSection(
  config: Record<string, string>,
  key: string,
  edit: (section: Record<string, unknown>) => void,
): void {
  const section = JSON.parse(config[key] ?? "{}") as Record<string, unknown>;
  edit(section);
  config[key] = JSON.stringify(section);
}

describe("stack configuration", () => {
  it("accepts both checked-in stacks", () => {
    expect(parseStackConfig(readStackFile("prod").config).environment).toBe("prod");
    expect(parseStackConfig(readStackFile("dev").config).environment).toBe("dev");
  });

  it("names a wrong type with its path and what it got", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:database", (database) => {
      database.instances = "three";
    });
    expect(problemsOf(config)).toEqual(['ndt-platform:database.instances: expected integer (got "three")']);
  });

  it("names a missing key", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:cache", (cache) => {
      delete cache.nodeType;
    });
    expect(problemsOf(config)).toEqual(["ndt-platform:cache.nodeType: missing required key"]);
  });

  it("names unknown keys, nested and top-level, and unknown namespaces", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:cluster", (cluster) => {
      cluster.kubernetesVersoin = "1.33";
    });
    config["ndt-platform:colour"] = "blue";
    config["ndt-platfrom:network"] = "{}";
    expect(problemsOf(config)).toEqual([
      'ndt-platfrom:network: unknown namespace "ndt-platfrom" (expected ndt-platform: or aws:)',
      "ndt-platform:colour: unknown key",
      "ndt-platform:cluster.kubernetesVersoin: unknown key",
    ]);
  });

  it("lists every problem at once, with allowed values for enumerations", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:broker", (broker) => {
      broker.deploymentMode = "ACTIVE_STANDBY_MULTI_AZ";
      broker.engineVersion = "3.11";
    });
    delete config["aws:region"];
    expect(problemsOf(config)).toEqual([
      'ndt-platform:broker.engineVersion: must be RabbitMQ 3.13 or newer (got "3.11")',
      'ndt-platform:broker.deploymentMode: must be one of "SINGLE_INSTANCE", "CLUSTER_MULTI_AZ" (got "ACTIVE_STANDBY_MULTI_AZ")',
      "aws:region: missing required key",
    ]);
  });

  it("accepts only the Kubernetes versions the guardrails and the object schema support", () => {
    for (const version of ["1.30", "1.35", "1.39", "latest"]) {
      const config = prodConfig();
      editSection(config, "ndt-platform:cluster", (cluster) => {
        cluster.kubernetesVersion = version;
      });
      expect(problemsOf(config)).toEqual([
        `ndt-platform:cluster.kubernetesVersion: must be one of "1.31", "1.32", "1.33", "1.34" (got "${version}")`,
      ]);
    }
  });

  it("checks rules that span keys once the shapes are right", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:cluster", (cluster) => {
      (cluster.gpuNodes as Record<string, number>).desiredSize = 9;
    });
    editSection(config, "ndt-platform:cache", (cache) => {
      cache.nodes = 1;
    });
    expect(problemsOf(config)).toEqual([
      "ndt-platform:cluster.gpuNodes: needs minSize <= desiredSize <= maxSize (got 1, 9, 6)",
      "ndt-platform:cache.nodes: multiAz needs at least 2 nodes",
    ]);
  });

  it("rejects a GPU node group outside the g5/g6 families", () => {
    const config = prodConfig();
    editSection(config, "ndt-platform:cluster", (cluster) => {
      (cluster.gpuNodes as Record<string, unknown>).instanceTypes = ["p4d.24xlarge"];
    });
    expect(problemsOf(config)).toEqual([
      'ndt-platform:cluster.gpuNodes.instanceTypes.0: must be a g5 or g6 instance type (got "p4d.24xlarge")',
    ]);
  });
});

describe("the released detector model", () => {
  it.each(["prod", "dev"])("%s deploys the model this commit ships, with its card's thresholds", (stack) => {
    const shipped = createHash("sha256")
      .update(readFileSync(new URL("../apps/detector/model/defects.onnx", import.meta.url)))
      .digest("hex");
    const model = parseStackConfig(readStackFile(stack).config).services.detectorModel;
    expect(model.sha256).toBe(shipped);
    // and the post-processing its model card measured the quality bar with
    expect({
      confThreshold: model.confidenceThreshold,
      iouThreshold: model.nmsIou,
      agnostic: model.classAgnosticNms,
    }).toEqual(BUNDLED_MODEL_OPTIONS);
  });
});
