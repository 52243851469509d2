/**
 * `npm run demo`: a newcomer's first five minutes against the running local stack (`npm start`). Registers a demo
 * organisation, creates an inspection, uploads a handful of generated weld radiographs (the CONTRACTS §5 generator)
 * with a progress bar, follows the server-sent events until every image is done, downloads the PDF report and
 * prints a table of findings next to what was actually drawn in each image.
 *
 * Env: PORT (8443) or NDT_URL for where the stack is; NDT_DATA_DIR (.local) for its certificate (or NDT_CA_FILE);
 * DEMO_IMAGES (6).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { encodeSample } from "../../apps/detector/model/dataset/encode.js";
import { CLASS_NAMES, generateSample } from "../../apps/detector/model/dataset/synth.js";
import { ApiClient } from "./client.js";
import { dataDirOf } from "./paths.js";

type DefectClass = (typeof CLASS_NAMES)[number];
type Counts = Record<DefectClass, number>;

interface Detection {
  class: DefectClass;
  score: number;
  box: [number, number, number, number];
}
export interface DemoImage {
  id: string;
  filename: string;
  status: "queued" | "processing" | "done" | "failed";
  error?: string;
  detections?: Detection[];
}

export interface DemoOptions {
  baseUrl: string;
  ca: string;
  images: number;
  /** Where the report PDF is written. */
  outDir: string;
  seed?: number;
  /** Progress and the final table; defaults to stdout. */
  write?: (text: string) => void;
  /** Redraw progress in place (a terminal) or print a line per step (logs, tests). */
  tty?: boolean;
  /** Give up waiting for detections after this long. @default 300000 */
  timeoutMs?: number;
}

export interface DemoResult {
  email: string;
  inspectionId: string;
  images: (DemoImage & { truth: Counts })[];
  reportFile: string;
  reportBytes: number;
}

function counts(classes: readonly string[]): Counts {
  const out: Counts = { porosity: 0, crack: 0, inclusion: 0 };
  for (const name of classes) if (name in out) out[name as DefectClass] += 1;
  return out;
}

function bar(done: number, total: number, width = 24): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}]`;
}

function fail(step: string, status: number, body: Buffer): never {
  let message = body.toString("utf8").slice(0, 300);
  try {
    const parsed = JSON.parse(message) as { error?: { code?: string; message?: string } };
    if (parsed.error) message = `${parsed.error.code}: ${parsed.error.message}`;
  } catch {
    // not JSON: shown as it is
  }
  throw new Error(`${step} failed (HTTP ${status}): ${message}`);
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const write = options.write ?? ((text: string) => process.stdout.write(text));
  const line = (text: string) => write(`${text}\n`);
  const api = new ApiClient(options.baseUrl, options.ca);
  try {
    const ready = await api.request("GET", "/readyz").catch((err: Error) => {
      throw new Error(`the platform does not answer at ${options.baseUrl} (${err.message}). Is \`npm start\` running?`);
    });
    if (ready.status !== 200) throw new Error(`the platform at ${options.baseUrl} is not ready yet: ${ready.body}`);

    // 1. an organisation of our own: a new address every run, so runs never collide
    const email = `demo-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}@ndt-demo.example`;
    const password = randomBytes(18).toString("base64url");
    const registered = await api.request("POST", "/api/v1/auth/register", {
      json: { email, password, organization: "Demo Welding Ltd" },
    });
    if (registered.status !== 201) fail("register", registered.status, registered.body);
    const login = await api.request("POST", "/api/v1/auth/login", { json: { email, password } });
    if (login.status !== 200) fail("login", login.status, login.body);
    const token = login.json<{ accessToken: string }>().accessToken;
    line(`✓ registered ${email} (organisation "Demo Welding Ltd")`);

    const created = await api.request("POST", "/api/v1/inspections", {
      token,
      json: { title: `Pipeline girth welds — demo ${new Date().toISOString().slice(0, 16)}`, site: "Demo yard" },
    });
    if (created.status !== 201) fail("create inspection", created.status, created.body);
    const inspectionId = created.json<{ id: string }>().id;
    line(`✓ inspection ${inspectionId}`);

    // 2. generated radiographs, each with the defects actually drawn (to compare with what the detector finds)
    const seed = options.seed ?? Math.floor(Math.random() * 1_000_000) + 1_000_000;
    const samples = await Promise.all(
      Array.from({ length: options.images }, async (_, index) => {
        const sample = generateSample(seed, index);
        return {
          filename: `weld-${String(index + 1).padStart(2, "0")}.png`,
          bytes: await encodeSample(sample, "png"),
          truth: counts(sample.defects.map((defect) => CLASS_NAMES[defect.classId] ?? "")),
        };
      }),
    );
    const total = samples.reduce((sum, sample) => sum + sample.bytes.length, 0);
    let sentBefore = 0;
    const uploaded: (DemoImage & { truth: Counts })[] = [];
    const progress = (sent: number, label: string) => {
      const text = `  uploading ${bar(sent, total)} ${(sent / 1024).toFixed(0)}/${(total / 1024).toFixed(0)} KiB  ${label}`;
      if (options.tty) write(`\r${text}`);
    };
    for (const sample of samples) {
      const answer = await api.request(
        "POST",
        `/api/v1/inspections/${inspectionId}/images?filename=${encodeURIComponent(sample.filename)}`,
        {
          token,
          body: sample.bytes,
          contentType: "image/png",
          onUpload: (sent) => progress(sentBefore + sent, sample.filename),
        },
      );
      if (answer.status !== 202) fail(`upload ${sample.filename}`, answer.status, answer.body);
      sentBefore += sample.bytes.length;
      uploaded.push({ ...answer.json<DemoImage>(), truth: sample.truth });
      if (!options.tty) line(`  uploaded ${sample.filename} ${bar(sentBefore, total)}`);
    }
    if (options.tty) write("\n");
    line(`✓ uploaded ${samples.length} radiographs (${(total / 1024).toFixed(0)} KiB)`);

    // 3. follow the events until every image is done or failed
    const state = new Map(uploaded.map((image) => [image.id, image]));
    const finished = () => [...state.values()].filter((image) => image.status === "done" || image.status === "failed");
    let reported = -1;
    const report = () => {
      const count = finished().length;
      const text = `  detecting ${bar(count, state.size)} ${count}/${state.size} finished`;
      if (options.tty) write(`\r${text}`);
      else if (count !== reported) line(text);
      reported = count;
    };
    const apply = (image: DemoImage): boolean => {
      const known = state.get(image.id);
      if (known && known.status !== image.status) {
        state.set(image.id, { ...known, ...image });
        report();
      }
      return finished().length === state.size;
    };
    const abort = new AbortController();
    const timeoutMs = options.timeoutMs ?? 300_000;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const following = api.events(
        `/api/v1/inspections/${inspectionId}/events`,
        token,
        (data) => apply(JSON.parse(data) as DemoImage),
        abort.signal,
      );
      // images finished before the stream opened send no event: read the current state once
      const current = await api.request("GET", `/api/v1/inspections/${inspectionId}`, { token });
      if (current.status !== 200) fail("read inspection", current.status, current.body);
      let done = false;
      for (const image of current.json<{ images: DemoImage[] }>().images) done = apply(image) || done;
      if (done || finished().length === state.size) abort.abort();
      await following;
    } finally {
      clearTimeout(timer);
    }
    if (options.tty) write("\n");
    if (finished().length < state.size) {
      throw new Error(`not every image was processed within ${timeoutMs / 1000} s (is the detector running?)`);
    }
    // the events carry the statuses; the inspection carries the detections of each image
    const final = await api.request("GET", `/api/v1/inspections/${inspectionId}`, { token });
    if (final.status !== 200) fail("read inspection", final.status, final.body);
    for (const image of final.json<{ images: DemoImage[] }>().images) {
      const known = state.get(image.id);
      if (known) state.set(image.id, { ...known, ...image });
    }
    line(`✓ detections finished`);

    // 4. the PDF report (409 not_ready until the last image is settled)
    let pdf: Buffer | undefined;
    for (let attempt = 0; attempt < 60 && !pdf; attempt++) {
      const answer = await api.request("GET", `/api/v1/inspections/${inspectionId}/report`, {
        token,
        timeoutMs: 120_000,
      });
      if (answer.status === 200) pdf = answer.body;
      else if (answer.status === 409) await new Promise((r) => setTimeout(r, 1_000));
      else fail("download report", answer.status, answer.body);
    }
    if (!pdf) throw new Error("the report stayed not_ready for a minute after every image finished");
    await mkdir(options.outDir, { recursive: true });
    const reportFile = join(options.outDir, `inspection-${inspectionId}.pdf`);
    await writeFile(reportFile, pdf);

    const images = uploaded.map((image) => state.get(image.id) ?? image);
    line("");
    line(findingsTable(images));
    line("");
    line(`Report (${(pdf.length / 1024).toFixed(0)} KiB): ${reportFile}`);
    return { email, inspectionId, images, reportFile, reportBytes: pdf.length };
  } finally {
    api.close();
  }
}

/** Per image: what the detector found per class, with what was drawn in brackets. */
export function findingsTable(images: readonly (DemoImage & { truth: Counts })[]): string {
  const header = ["image", "status", ...CLASS_NAMES];
  const rows = images.map((image) => {
    const found = counts((image.detections ?? []).map((detection) => detection.class));
    return [
      image.filename,
      image.status === "failed" ? `failed: ${image.error ?? "?"}` : image.status,
      ...CLASS_NAMES.map((name) => `${found[name]} (${image.truth[name]})`),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const format = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ");
  return [
    "Findings per image: detected (drawn)",
    format(header),
    widths.map((width) => "─".repeat(width)).join("  "),
    ...rows.map(format),
  ].join("\n");
}

async function main(): Promise<number> {
  const dataDir = dataDirOf(process.env);
  const caFile = process.env.NDT_CA_FILE || join(dataDir, "tls", "cert.pem");
  const baseUrl = process.env.NDT_URL || `https://localhost:${process.env.PORT || "8443"}`;
  let ca: string;
  try {
    ca = await readFile(caFile, "utf8");
  } catch {
    console.error(`No certificate at ${caFile}: start the platform first (npm start), with the same NDT_DATA_DIR.`);
    return 1;
  }
  const images = Number(process.env.DEMO_IMAGES || "6");
  if (!Number.isInteger(images) || images < 1 || images > 100) {
    console.error(`DEMO_IMAGES must be a whole number from 1 to 100, got ${process.env.DEMO_IMAGES}`);
    return 1;
  }
  console.log(`NDT demo against ${baseUrl}\n`);
  try {
    await runDemo({ baseUrl, ca, images, outDir: join(dataDir, "demo"), tty: process.stdout.isTTY === true });
    return 0;
  } catch (err) {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main();
}
