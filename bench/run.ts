/**
 * `npm run bench`: runs every `bench/*.bench.ts` (each default-exports a `Benchmark`) and writes its section of
 * BENCHMARKS.md, between markers, leaving other sections as they are. `npm run bench -- <id>` runs one.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Benchmark } from "./lib.js";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "BENCHMARKS.md");

function writeSection(id: string, title: string, body: string) {
  let doc: string;
  try {
    doc = readFileSync(target, "utf8");
  } catch {
    doc = "# Benchmarks\n\nWritten by `npm run bench` (bench/run.ts); each section by its own benchmark.\n";
  }
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  const section = `${start}\n## ${title}\n\n${body.trim()}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  doc = i >= 0 && j > i ? doc.slice(0, i) + section + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(target, doc);
}

const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
for (const file of files) {
  const bench = (await import(pathToFileURL(join(here, file)).href)).default as Benchmark;
  if (only.length > 0 && !only.includes(bench.id)) continue;
  console.error(`\n=== ${bench.title} (${file}) ===`);
  const body = await bench.run();
  writeSection(bench.id, bench.title, body);
  console.log(body);
}
console.error(`\nwritten: ${target}`);
