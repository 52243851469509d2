/**
 * The GitHub Actions workflows, checked as data: they parse, name the jobs and triggers the delivery relies on, take
 * AWS credentials only through OIDC, never hand them to fork pull requests, and gate prod behind a release tag and
 * the `production` environment.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REPO_ROOT } from "./build.js";

type Job = {
  if?: string;
  environment?: string | { name: string };
  concurrency?: { group: string; "cancel-in-progress"?: boolean };
  permissions?: Record<string, string>;
  services?: Record<string, { image: string }>;
  env?: Record<string, string>;
  steps?: { uses?: string; run?: string; with?: Record<string, unknown> }[];
};
type Workflow = { name: string; on: Record<string, unknown>; permissions?: unknown; jobs: Record<string, Job> };

const DIR = path.join(REPO_ROOT, ".github/workflows");
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const raw = (f: string): string => readFileSync(path.join(DIR, f), "utf8");
const load = (f: string): Workflow => parse(raw(f)) as Workflow;
const uses = (job: Job, action: string) => (job.steps ?? []).filter((s) => s.uses?.split("@")[0] === action);
/** Jobs that can obtain cloud credentials: they ask for an OIDC token or configure AWS credentials. */
const credentialed = (wf: Workflow) =>
  Object.entries(wf.jobs).filter(
    ([, j]) => j.permissions?.["id-token"] === "write" || uses(j, "aws-actions/configure-aws-credentials").length > 0,
  );
const FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository";

describe("workflow files", () => {
  it("exist and each parses as YAML with a name, triggers and jobs", () => {
    expect(files).toEqual(expect.arrayContaining(["ci.yml", "preview.yml", "deploy.yml"]));
    for (const f of files) {
      const wf = load(f);
      expect(wf.name, f).toBeTypeOf("string");
      expect(wf.on, f).toBeTypeOf("object");
      expect(Object.keys(wf.jobs ?? {}).length, f).toBeGreaterThan(0);
    }
  });

  it("pin every action to a version (no branch refs)", () => {
    for (const f of files) {
      for (const [name, job] of Object.entries(load(f).jobs)) {
        for (const step of job.steps ?? []) {
          if (step.uses && !step.uses.startsWith("./")) {
            expect(step.uses, `${f} ${name}`).toMatch(/@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/);
          }
        }
      }
    }
  });

  it("never use long-lived AWS keys or Pulumi tokens", () => {
    for (const f of files) {
      expect(raw(f), f).not.toMatch(
        /AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws-secret-access-key|PULUMI_ACCESS_TOKEN/,
      );
    }
  });
});

describe("ci.yml", () => {
  const wf = load("ci.yml");
  const test = wf.jobs.test!;

  it("runs on pull requests and pushes to main", () => {
    expect(wf.on).toHaveProperty("pull_request");
    expect(wf.on.push).toEqual({ branches: ["main"] });
  });

  it("runs .ci/run (npm ci, lint, typecheck, tests) with PostgreSQL, Redis and RabbitMQ services", () => {
    expect(test).toBeDefined();
    expect((test.steps ?? []).some((s) => s.run?.includes(".ci/run"))).toBe(true);
    const ciRun = readFileSync(path.join(REPO_ROOT, ".ci/run"), "utf8");
    for (const cmd of ["npm ci", "npm run lint", "npm run typecheck", "npm test"]) expect(ciRun).toContain(cmd);
    const images = Object.values(test.services ?? {}).map((s) => s.image.split(":")[0]);
    expect(images.sort()).toEqual(["postgres", "rabbitmq", "redis"]);
    for (const s of Object.values(test.services ?? {})) expect(s.image).toMatch(/:[\w.-]+$/);
  });

  it("points the tests at those services through DATABASE_URL, REDIS_URL, AMQP_URL, under CI=true", () => {
    expect(test.env?.CI).toBe("true");
    expect(test.env?.DATABASE_URL).toMatch(/^postgres(ql)?:\/\/.*@postgres:5432\/test$/);
    expect(test.env?.REDIS_URL).toMatch(/^redis:\/\/redis:6379/);
    expect(test.env?.AMQP_URL).toMatch(/^amqp:\/\/.*@rabbitmq:5672/);
  });

  it("has no credentials at all", () => {
    expect(credentialed(wf)).toEqual([]);
  });

  it("builds every service's image from docker/service.Dockerfile, and the detector's GPU variant", () => {
    type Entry = { app: string; dockerfile: string };
    const matrix = (wf.jobs.images as { strategy: { matrix: { include: Entry[] } } }).strategy.matrix.include;
    const services = ["gateway", "auth", "files", "reports", "detector"];
    expect(
      matrix
        .filter((entry) => entry.dockerfile === "docker/service.Dockerfile")
        .map((entry) => entry.app)
        .sort(),
    ).toEqual([...services].sort());
    expect(matrix).toContainEqual(
      expect.objectContaining({ app: "detector", dockerfile: "docker/detector-gpu.Dockerfile" }),
    );
    const dockerfiles = readdirSync(path.join(REPO_ROOT, "docker")).filter((file) => file.endsWith(".Dockerfile"));
    expect(new Set(matrix.map((entry) => entry.dockerfile))).toEqual(
      new Set(dockerfiles.map((file) => `docker/${file}`)),
    );
    expect(JSON.stringify(wf.jobs.images)).toContain("APP=${{ matrix.app }}");
  });
});

describe("preview.yml", () => {
  const wf = load("preview.yml");

  it("runs on pull requests with the offline plan-diff job and the pulumi preview job", () => {
    expect(wf.on).toHaveProperty("pull_request");
    expect(Object.keys(wf.jobs)).toEqual(expect.arrayContaining(["plan-diff", "preview"]));
  });

  it("previews dev and prod with pulumi/actions: --diff, one comment per stack edited in place", () => {
    const job = wf.jobs.preview!;
    const matrix = (job as { strategy: { matrix: { include: { stack: string }[] } } }).strategy.matrix.include;
    expect(matrix.map((m) => m.stack).sort()).toEqual(["dev", "prod"]);
    const [pulumi] = uses(job, "pulumi/actions");
    expect(pulumi?.uses).toMatch(/^pulumi\/actions@v\d+$/);
    expect(pulumi?.with).toMatchObject({
      command: "preview",
      "stack-name": "${{ matrix.stack }}",
      diff: true,
      "comment-on-pr": true,
      "edit-pr-comment": true,
    });
  });

  it("gets AWS credentials through OIDC: id-token: write and a role to assume", () => {
    const job = wf.jobs.preview!;
    expect(job.permissions?.["id-token"]).toBe("write");
    const [aws] = uses(job, "aws-actions/configure-aws-credentials");
    expect(aws?.with?.["role-to-assume"]).toBeTruthy();
    expect(raw("preview.yml")).not.toContain("AWS_SECRET_ACCESS_KEY");
  });

  it("guards every job that can get credentials with the fork condition", () => {
    const jobs = credentialed(wf);
    expect(jobs.map(([n]) => n)).toContain("preview");
    for (const [name, job] of jobs) expect(job.if, name).toContain(FORK_GUARD);
  });

  it("runs the offline plan diff for both stacks against the base branch, for every pull request", () => {
    const job = wf.jobs["plan-diff"]!;
    expect(job.if).toBeUndefined(); // forks included
    expect(job.permissions?.["id-token"]).toBeUndefined();
    const script = (job.steps ?? []).map((s) => s.run ?? "").join("\n");
    expect(script).toMatch(/for stack in dev prod/);
    expect(script).toContain('npm run --silent plan:diff -- --stack "$stack" --base "origin/${BASE_REF}"');
    expect(job.steps?.find((s) => s.run?.includes("plan:diff"))).toMatchObject({
      env: { BASE_REF: "${{ github.base_ref }}" },
    });
    const checkout = uses(job, "actions/checkout")[0];
    expect(checkout?.with?.["fetch-depth"]).toBe(0);
    const [comment] = uses(job, "marocchino/sticky-pull-request-comment");
    expect(comment?.with).toMatchObject({ header: "plan-diff", path: "plan-diff/plan-diff.md" });
  });

  it("posts fork pull requests' plan diff from a workflow_run that never checks out their code", () => {
    const cw = load("plan-diff-comment.yml");
    expect(cw.on).toEqual({ workflow_run: { workflows: [wf.name], types: ["completed"] } });
    const job = cw.jobs.comment!;
    expect(uses(job, "actions/checkout")).toEqual([]);
    expect(credentialed(cw)).toEqual([]);
    expect(uses(job, "marocchino/sticky-pull-request-comment")[0]?.with).toMatchObject({ header: "plan-diff" });
  });
});

describe("deploy.yml", () => {
  const wf = load("deploy.yml");
  const dev = wf.jobs["deploy-dev"]!;
  const prod = wf.jobs["deploy-prod"]!;
  const envName = (j: Job) => (typeof j.environment === "string" ? j.environment : j.environment?.name);

  it("triggers on pushes to main and on v* tags, nothing else", () => {
    expect(wf.on).toEqual({ push: { branches: ["main"], tags: ["v*"] } });
  });

  it("runs pulumi up for dev on main only", () => {
    expect(dev.if).toBe("github.ref == 'refs/heads/main'");
    expect(uses(dev, "pulumi/actions")[0]?.with).toMatchObject({ command: "up", "stack-name": "dev" });
  });

  it("runs pulumi up for prod on a release tag only, behind the production environment", () => {
    expect(prod.if).toBe("startsWith(github.ref, 'refs/tags/v')");
    expect(envName(prod)).toBe("production");
    expect(uses(prod, "pulumi/actions")[0]?.with).toMatchObject({ command: "up", "stack-name": "prod" });
  });

  it("takes credentials only through OIDC", () => {
    for (const job of [dev, prod]) {
      expect(job.permissions?.["id-token"]).toBe("write");
      expect(uses(job, "aws-actions/configure-aws-credentials")[0]?.with?.["role-to-assume"]).toBeTruthy();
    }
  });

  it("sets each deploy's own image tag before pulumi up (ECR tags are immutable): the commit for dev, the release for prod", () => {
    for (const [job, stack, tag] of [
      [dev, "dev", '"git-${GITHUB_SHA::7}"'],
      [prod, "prod", '"${GITHUB_REF_NAME}"'],
    ] as const) {
      const steps = job.steps ?? [];
      const setTag = steps.findIndex((step) => step.run?.includes("tools/delivery/image-tag.ts"));
      const up = steps.findIndex((step) => step.uses?.startsWith("pulumi/actions@"));
      expect(steps[setTag]?.run, stack).toBe(`npx tsx tools/delivery/image-tag.ts --stack ${stack} --tag ${tag}`);
      expect(setTag, stack).toBeLessThan(up);
    }
  });

  it("never runs two updates of one stack at once and never cancels a running one", () => {
    expect(dev.concurrency).toEqual({ group: "pulumi-dev", "cancel-in-progress": false });
    expect(prod.concurrency).toEqual({ group: "pulumi-prod", "cancel-in-progress": false });
  });
});
