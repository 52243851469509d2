/**
 * `npx tsx tools/delivery/image-tag.ts --stack <dev|prod> --tag <tag>`: sets `services.imageTag` in
 * Pulumi.<stack>.yaml (comments and layout kept), the tag every image of the next `pulumi up` is built, pushed and
 * deployed under. The deploy workflow runs it with the commit (dev) or the release tag (prod) before `pulumi up`: ECR
 * tags are immutable (A16), so one fixed tag in the file would fail the push of the next deploy that changed code.
 * The edited file is validated as a whole before it is written; a bad tag changes nothing and exits 1.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { parseDocument } from "yaml";
import { PROJECT, parseStackConfig, StackConfigError } from "../../stacks/config.js";
import { readStackFile, StackFileError, stackFilePath } from "../../stacks/plan/stack-file.js";

/** Writes `tag` into the stack file of `stack` under `root`; throws StackConfigError when the result is invalid. */
export function setImageTag(stack: string, tag: string, root?: string): void {
  const path = stackFilePath(stack, root);
  readStackFile(stack, root, path); // an unknown stack or a broken file fails here, named
  const document = parseDocument(readFileSync(path, "utf8"));
  document.setIn(["config", `${PROJECT}:services`, "imageTag"], tag);
  // validated exactly as `pulumi up` and `npm run plan` will read it, before it replaces the file
  const candidate = `${path}.next`;
  writeFileSync(candidate, document.toString({ flowCollectionPadding: false }));
  try {
    parseStackConfig(readStackFile(stack, root, candidate).config, path);
    renameSync(candidate, path);
  } finally {
    rmSync(candidate, { force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { stack: { type: "string" }, tag: { type: "string" } } });
  if (!values.stack || values.tag === undefined) {
    process.stderr.write("usage: tsx tools/delivery/image-tag.ts --stack <dev|prod> --tag <image tag>\n");
    process.exit(2);
  }
  try {
    setImageTag(values.stack, values.tag);
    process.stdout.write(`Pulumi.${values.stack}.yaml: services.imageTag = ${values.tag}\n`);
  } catch (error) {
    if (!(error instanceof StackConfigError || error instanceof StackFileError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}
