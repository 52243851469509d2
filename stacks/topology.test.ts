import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPOSITORY_ROOT } from "./plan/stack-file.js";
import { imagesOf, type Topology, TopologyError, topology, topologyProblems, validateTopology } from "./topology.js";

const withGpu = { gpuNodes: true };
/** The platform's topology, deep-copied and edited. */
function edited(edit: (copy: Topology & Record<string, unknown>) => void): Topology {
  const copy = structuredClone(topology) as Topology & Record<string, unknown>;
  edit(copy);
  return copy;
}
const service = (copy: Topology, name: string) => {
  const found = copy.services.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no ${name}`);
  return found as unknown as Record<string, unknown>;
};

describe("the topology", () => {
  it("is valid, with one public service, and names every image once for the registry", () => {
    expect(topologyProblems(topology, withGpu)).toEqual([]);
    expect(imagesOf(topology)).toEqual(["gateway", "auth", "files", "reports", "detector", "migrations"]);
  });

  const cases: [string, (copy: Topology) => void, { service: string; reason: RegExp }, boolean?][] = [
    [
      "a port clash",
      (copy) => {
        service(copy, "reports").port = 8081;
      },
      { service: "reports", reason: /port 8081 clashes with auth/ },
    ],
    [
      "a GPU service without a GPU node group",
      () => undefined,
      { service: "detector", reason: /needs a GPU but the stack has no GPU node group/ },
      false,
    ],
    [
      "an unknown connection",
      (copy) => {
        (service(copy, "files").connections as string[]).push("kafka");
      },
      { service: "files", reason: /unknown connection "kafka"/ },
    ],
    [
      "an unknown bucket",
      (copy) => {
        service(copy, "reports").buckets = [{ bucket: "archive", prefix: "a/", access: "read" }];
      },
      { service: "reports", reason: /unknown connection: bucket "archive"/ },
    ],
    [
      "a call to a service that does not exist",
      (copy) => {
        service(copy, "gateway").calls = ["auth", "billing"];
      },
      { service: "gateway", reason: /unknown connection: calls "billing"/ },
    ],
    [
      "a missing image",
      (copy) => {
        delete service(copy, "auth").image;
      },
      { service: "auth", reason: /image: missing image/ },
    ],
    [
      "an image with a tag (tags come from the stack config)",
      (copy) => {
        service(copy, "auth").image = "auth:latest";
      },
      { service: "auth", reason: /image: must be an ECR repository name/ },
    ],
    [
      "a worker without its queue",
      (copy) => {
        delete service(copy, "detector").queue;
      },
      { service: "detector", reason: /needs the queue it consumes/ },
    ],
  ];
  for (const [what, edit, expected, gpuNodes = true] of cases) {
    it(`rejects ${what}, naming the service and the reason`, () => {
      const problems = topologyProblems(edited(edit), { gpuNodes });
      expect(problems).toHaveLength(1);
      expect(problems[0]?.service).toBe(expected.service);
      expect(problems[0]?.reason).toMatch(expected.reason);
    });
  }

  it("collects every problem and throws once", () => {
    const bad = edited((copy) => {
      service(copy, "reports").port = 8080;
      delete service(copy, "files").image;
    });
    expect(() => validateTopology(bad, { gpuNodes: false })).toThrow(TopologyError);
    try {
      validateTopology(bad, { gpuNodes: false });
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toMatch(/reports: port 8080 clashes with gateway/);
      expect(message).toMatch(/files: image: missing image/);
      expect(message).toMatch(/detector: needs a GPU/);
      expect((error as TopologyError).problems).toHaveLength(3);
    }
  });
});

describe("npm run plan with a bad topology", () => {
  const scratch = mkdtempSync(join(tmpdir(), "ndt-topology-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("exits non-zero naming the service and the problem, without a stack trace", () => {
    const file = join(scratch, "topology.json");
    writeFileSync(
      file,
      JSON.stringify(
        edited((copy) => {
          service(copy, "reports").port = 8081;
        }),
      ),
    );
    const result = spawnSync(
      process.execPath,
      ["--import", "tsx", join(REPOSITORY_ROOT, "stacks/plan/cli.ts"), "--stack", "prod", "--topology", file],
      { cwd: REPOSITORY_ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("plan: topology is invalid:\n  - reports: port 8081 clashes with auth");
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stderr).not.toContain("unexpected failure");
  });
});
