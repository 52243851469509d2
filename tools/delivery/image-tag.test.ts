/** tools/delivery/image-tag.ts on copies of the real stack files: the tag is set, everything else kept byte for byte. */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseStackConfig } from "../../stacks/config.js";
import { readStackFile } from "../../stacks/plan/stack-file.js";
import { REPO_ROOT } from "./build.js";
import { setImageTag } from "./image-tag.js";

const roots: string[] = [];
function copyOfStacks(): string {
  const root = mkdtempSync(join(tmpdir(), "ndt-image-tag-"));
  roots.push(root);
  for (const stack of ["dev", "prod"])
    copyFileSync(join(REPO_ROOT, `Pulumi.${stack}.yaml`), join(root, `Pulumi.${stack}.yaml`));
  return root;
}
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe("image-tag", () => {
  it.each([
    ["dev", "git-0123abc"],
    ["prod", "v1.2.0"],
  ])("sets %s's services.imageTag to %s and changes no other line", (stack, tag) => {
    const root = copyOfStacks();
    const path = join(root, `Pulumi.${stack}.yaml`);
    const before = readFileSync(path, "utf8").split("\n");
    setImageTag(stack, tag, root);
    const after = readFileSync(path, "utf8").split("\n");
    expect(parseStackConfig(readStackFile(stack, root).config).services.imageTag).toBe(tag);
    const changed = after.filter((line, i) => line !== before[i]);
    expect(after).toHaveLength(before.length);
    expect(changed).toEqual([`    imageTag: ${tag}`]);
  });

  it("refuses a tag the stack config rejects (latest, a space) and leaves the file as it was", () => {
    const root = copyOfStacks();
    const path = join(root, "Pulumi.dev.yaml");
    const before = readFileSync(path, "utf8");
    expect(() => setImageTag("dev", "latest", root)).toThrow(/imageTag/);
    expect(() => setImageTag("dev", "a b", root)).toThrow(/imageTag/);
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(() => setImageTag("staging", "v1", root)).toThrow(/unknown stack "staging"/);
  });
});
