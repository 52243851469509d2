/**
 * The PDF of one inspection (pdfkit): a header, the summary table per defect class, an index of the images, then
 * one section per image: the radiograph with every detection's box drawn and labelled, and its defect list.
 *
 * Boxes and labels are drawn as PDF vector graphics over the embedded image rather than burnt into its pixels: they
 * stay sharp at any zoom, their text is searchable, and no font has to be installed for an image library to draw
 * text. Images are decoded and downscaled by sharp (libvips) and embedded as JPEG (pdfkit passes JPEG through
 * without re-encoding; its PNG path decodes in JavaScript, far slower).
 *
 * Output is deterministic for the same data: the document dates come from the inspection, and nothing else in the
 * file depends on the clock or randomness, so the bytes can be cached under the data's content hash.
 */
import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import PDFDocument from "pdfkit";
import sharp from "sharp";
import {
  type FontWeight,
  type TextRun,
  metadataText,
  primaryFace,
  registerFonts,
  textLines,
  textRuns,
} from "./fonts.js";
import {
  DEFECT_CLASSES,
  type DefectClass,
  type RenderSettings,
  type ReportData,
  type ReportImage,
  normalizeReport,
  summarize,
} from "./model.js";

/** The original bytes of an image, or null when its object is missing. Other failures throw. */
export type ImageLoader = (image: ReportImage) => Promise<Buffer | null>;

export interface RenderOptions {
  /** The report's content hash, printed as its identifier. */
  hash: string;
  loadImage: ImageLoader;
  /** Longest side of an embedded image in pixels (1600 ≈ 230 dpi across the page), and its JPEG quality. */
  settings: RenderSettings;
}

export const DEFAULT_RENDER_SETTINGS: RenderSettings = { maxImagePixels: 1600, jpegQuality: 85 };

/** Per-class colours, chosen to stand out on grey radiographs and from each other. */
export const CLASS_COLOURS: Record<DefectClass, string> = {
  porosity: "#0091ff",
  crack: "#ff1f1f",
  inclusion: "#ffa600",
};

const CLASS_LABELS: Record<DefectClass, string> = { porosity: "Porosity", crack: "Crack", inclusion: "Inclusion" };

const PAGE = { size: "A4" as const, margin: 50 };
const A4_WIDTH = 595.28;
const A4_HEIGHT = 841.89;
const CONTENT_WIDTH = A4_WIDTH - 2 * PAGE.margin;
const BOTTOM = A4_HEIGHT - PAGE.margin;
/** Height left for an image under its heading, so its defect list starts on the same page. */
const IMAGE_MAX_HEIGHT = 430;
const ROW_HEIGHT = 16;
const TEXT = "#1a1a1a";
const MUTED = "#666666";
const RULE = "#cccccc";

const BODY = primaryFace("regular").name;
const BOLD = primaryFace("bold").name;

function formatDate(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

const formatBox = (box: readonly number[]) => `${box.map((v) => Math.round(v)).join(", ")}`;

/** A downscaled JPEG of the image plus its full size (what the boxes are measured in). */
export interface PreparedImage {
  jpeg: Buffer;
  originalWidth: number;
  originalHeight: number;
}

/**
 * Decode, orient, downscale and re-encode one image. Oriented by its EXIF tag, as the detector decodes it, so the
 * boxes (in the detector's pixels) land where it saw the defects.
 */
export async function prepareImage(bytes: Buffer, maxPixels: number, quality: number): Promise<PreparedImage> {
  // as lenient as the detector (failOn "error"): an image it could read is shown, not replaced by a placeholder
  const meta = await sharp(bytes, { failOn: "error" }).metadata(); // the header only
  if (!meta.width || !meta.height) throw new Error("the image has no dimensions");
  const quarterTurn = (meta.orientation ?? 1) >= 5;
  const jpeg = await sharp(bytes, { failOn: "error" })
    .rotate()
    .resize({ width: maxPixels, height: maxPixels, fit: "inside", withoutEnlargement: true })
    .flatten({ background: "#ffffff" })
    .jpeg({ quality, chromaSubsampling: "4:4:4" })
    .toBuffer();
  return {
    jpeg,
    originalWidth: quarterTurn ? meta.height : meta.width,
    originalHeight: quarterTurn ? meta.width : meta.height,
  };
}

/**
 * Render the report. The PDF streams out as it is made (a few images decoded at a time, so memory does not grow
 * with the number of images); a rendering failure destroys the stream with the error.
 */
export function renderReport(report: ReportData, opts: RenderOptions): Readable {
  const data = normalizeReport(report);
  const created = new Date(data.inspection.createdAt);
  const doc = new PDFDocument({
    size: PAGE.size,
    margin: PAGE.margin,
    bufferPages: false,
    autoFirstPage: true,
    displayTitle: true,
    info: {
      Title: metadataText(`Inspection report: ${data.inspection.title}`),
      Subject: `Inspection ${data.inspection.id}`,
      Author: "ndt-platform",
      Creator: "ndt-platform reports",
      Producer: "ndt-platform reports (pdfkit)",
      Keywords: `report ${opts.hash}`,
      CreationDate: created,
      ModDate: created,
    },
  });
  registerFonts(doc);
  void drawReport(doc, data, opts).then(
    () => doc.end(),
    (err: unknown) => doc.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return doc;
}

/** Render the whole report into memory (tests, small reports). */
export async function renderReportToBuffer(data: ReportData, opts: RenderOptions): Promise<Buffer> {
  return buffer(renderReport(data, opts));
}

type Doc = PDFKit.PDFDocument;

/** An image ready to draw, or why it cannot be shown. */
type Picture = { prepared: PreparedImage } | { unavailable: string };

async function loadPicture(image: ReportImage, opts: RenderOptions): Promise<Picture> {
  const bytes = await opts.loadImage(image);
  if (!bytes) return { unavailable: "the image is missing from storage" };
  try {
    return { prepared: await prepareImage(bytes, opts.settings.maxImagePixels, opts.settings.jpegQuality) };
  } catch {
    // a poison image (the detector marks those failed) still gets its section, without the picture
    return { unavailable: "the image could not be decoded" };
  }
}

/**
 * Images fetched and decoded ahead of the one being drawn, so the next image's object-store round trip and decode
 * overlap the current page. One: each picture held costs up to an original (≤ 50 MiB) plus its decoded pixels.
 */
const LOOKAHEAD = 1;

async function drawReport(doc: Doc, data: ReportData, opts: RenderOptions): Promise<void> {
  drawHeader(doc, data, opts.hash);
  drawSummary(doc, data);
  drawImageIndex(doc, data);
  const pictures = new Map<number, Promise<Picture>>();
  const start = (index: number) => {
    const image = data.images[index];
    if (!image || pictures.has(index)) return;
    const picture = loadPicture(image, opts);
    // awaited in its turn; until then a failure must not count as an unhandled rejection
    picture.catch(() => undefined);
    pictures.set(index, picture);
  };
  for (const [index, image] of data.images.entries()) {
    for (let ahead = 0; ahead <= LOOKAHEAD; ahead++) start(index + ahead);
    const picture = await pictures.get(index)!;
    pictures.delete(index);
    doc.addPage();
    drawImageSection(doc, image, index, data.images.length, picture);
  }
}

/**
 * Per-run text options that keep a line on the primary face's baseline and line height whichever faces it mixes
 * (Noto's ascender is taller than DejaVu's: its runs would sit lower and their lines step further).
 */
function runOptions(run: TextRun, weight: FontWeight, size: number) {
  const primary = primaryFace(weight);
  return { baseline: -primary.ascender * size, lineGap: (primary.lineHeight - run.face.lineHeight) * size };
}

/**
 * User text as a paragraph at (x, y) or the current position, wrapped to `width`: each of its own lines on a line of
 * its own, each run of characters in the first font that has them (pdfkit's `continued` chains the runs).
 */
function paragraph(
  doc: Doc,
  text: string,
  opts: { weight: FontWeight; size: number; width: number; x?: number; y?: number },
) {
  const { weight, size, width } = opts;
  let first = true;
  for (const line of textLines(text, weight)) {
    // an empty line still takes its height
    const runs = line.length > 0 ? line : [{ face: primaryFace(weight), text: " " }];
    runs.forEach((run, i) => {
      doc.font(run.face.name).fontSize(size);
      const options = { width, continued: i < runs.length - 1, ...runOptions(run, weight, size) };
      // pdfkit reads an undefined x as "no position and no options": position only the first run
      if (first && opts.x !== undefined) doc.text(run.text, opts.x, opts.y, options);
      else doc.text(run.text, options);
      first = false;
    });
  }
}

/**
 * User text on one line from (x, y), cut to `width` with an ellipsis. The runs are measured and placed here: pdfkit's
 * `ellipsis` cuts the text of one call, not a chain of runs in different fonts.
 */
function singleLine(
  doc: Doc,
  text: string,
  opts: { weight: FontWeight; size: number; width: number; x: number; y: number },
) {
  const { weight, size } = opts;
  const widthOf = (run: TextRun) => doc.font(run.face.name).fontSize(size).widthOfString(run.text);
  const runs = textRuns(text, weight);
  if (runs.reduce((sum, run) => sum + widthOf(run), 0) > opts.width) {
    const ellipsis: TextRun = { face: primaryFace(weight), text: "…" };
    let room = opts.width - widthOf(ellipsis);
    const kept: TextRun[] = [];
    for (const run of runs) {
      const characters = [...run.text];
      // the longest prefix that fits (binary search: a long file name would take hundreds of measurements)
      let low = 0;
      let high = characters.length;
      while (low < high) {
        const middle = Math.ceil((low + high) / 2);
        if (widthOf({ ...run, text: characters.slice(0, middle).join("") }) <= room) low = middle;
        else high = middle - 1;
      }
      const fitting = { face: run.face, text: characters.slice(0, low).join("") };
      if (low > 0) kept.push(fitting);
      if (low < characters.length) break;
      room -= widthOf(fitting);
    }
    const last = kept.at(-1);
    if (last?.face === ellipsis.face) last.text += ellipsis.text;
    else kept.push(ellipsis);
    runs.splice(0, runs.length, ...kept);
  }
  let x = opts.x;
  for (const run of runs) {
    doc
      .font(run.face.name)
      .fontSize(size)
      .text(run.text, x, opts.y, { lineBreak: false, ...runOptions(run, weight, size) });
    x += widthOf(run);
  }
}

function heading(doc: Doc, text: string, size = 13) {
  doc.moveDown(0.6).fillColor(TEXT);
  paragraph(doc, text, { weight: "bold", size, width: CONTENT_WIDTH });
  doc.moveDown(0.3);
}

function drawHeader(doc: Doc, data: ReportData, hash: string) {
  const { inspection } = data;
  doc.font(BODY).fontSize(10).fillColor(MUTED).text("NDT weld radiograph inspection report");
  doc.moveDown(0.3).fillColor(TEXT);
  paragraph(doc, inspection.title, { weight: "bold", size: 20, width: CONTENT_WIDTH });
  doc.moveDown(0.5);
  const fields: [string, string][] = [
    ["Inspection", inspection.id],
    ["Site", inspection.site ?? "-"],
    ["Status", inspection.status],
    ["Created", formatDate(inspection.createdAt)],
    ["Report", hash.slice(0, 16)],
  ];
  for (const [label, value] of fields) {
    const y = doc.y;
    doc.font(BOLD).fontSize(10).fillColor(MUTED).text(label, PAGE.margin, y, { width: 90 });
    doc.fillColor(TEXT);
    paragraph(doc, value, { weight: "regular", size: 10, width: CONTENT_WIDTH - 90, x: PAGE.margin + 90, y });
    doc.moveDown(0.2);
  }
  if (inspection.notes) {
    doc.x = PAGE.margin;
    heading(doc, "Notes", 11);
    doc.fillColor(TEXT);
    paragraph(doc, inspection.notes, { weight: "regular", size: 10, width: CONTENT_WIDTH });
  }
}

/** A row of cells of equal width at the current y; `colours` marks class columns with a swatch. */
function tableRow(
  doc: Doc,
  cells: readonly string[],
  widths: readonly number[],
  opts: { bold?: boolean; swatches?: readonly (string | undefined)[] } = {},
) {
  const y = doc.y;
  let x = PAGE.margin;
  const weight = opts.bold ? "bold" : "regular";
  cells.forEach((cell, i) => {
    const width = widths[i] ?? 60;
    const swatch = opts.swatches?.[i];
    let textX = x + 4;
    if (swatch) {
      doc.rect(x + 4, y + 3, 8, 8).fill(swatch);
      textX += 12;
    }
    doc.fillColor(TEXT);
    singleLine(doc, cell, { weight, size: 10, width: width - (textX - x) - 4, x: textX, y: y + 3 });
    x += width;
  });
  doc
    .moveTo(PAGE.margin, y + ROW_HEIGHT)
    .lineTo(PAGE.margin + widths.reduce((a, b) => a + b, 0), y + ROW_HEIGHT)
    .lineWidth(0.5)
    .strokeColor(RULE)
    .stroke();
  doc.x = PAGE.margin;
  doc.y = y + ROW_HEIGHT;
}

function drawSummary(doc: Doc, data: ReportData) {
  const summary = summarize(data.images);
  doc.x = PAGE.margin;
  heading(doc, "Summary");
  const widths = Array<number>(6).fill(CONTENT_WIDTH / 6);
  const swatches = [undefined, undefined, undefined, ...DEFECT_CLASSES.map((c) => CLASS_COLOURS[c])];
  tableRow(doc, ["Images", "Done", "Failed", ...DEFECT_CLASSES.map((c) => CLASS_LABELS[c])], widths, {
    bold: true,
    swatches,
  });
  tableRow(
    doc,
    [summary.images, summary.done, summary.failed, ...DEFECT_CLASSES.map((c) => summary.defects[c])].map(String),
    widths,
  );
}

/** Start a new page when fewer than `needed` points are left. Returns whether it did. */
function ensureSpace(doc: Doc, needed: number): boolean {
  if (doc.y + needed <= BOTTOM) return false;
  doc.addPage();
  return true;
}

function drawImageIndex(doc: Doc, data: ReportData) {
  if (data.images.length === 0) {
    heading(doc, "Images");
    doc.font(BODY).fontSize(10).fillColor(MUTED).text("No images were uploaded to this inspection.");
    return;
  }
  heading(doc, "Images");
  const widths = [30, 170, 70, ...DEFECT_CLASSES.map(() => 75)];
  const header = ["#", "File", "Status", ...DEFECT_CLASSES.map((c) => CLASS_LABELS[c])];
  const swatches = [undefined, undefined, undefined, ...DEFECT_CLASSES.map((c) => CLASS_COLOURS[c])];
  tableRow(doc, header, widths, { bold: true, swatches });
  data.images.forEach((image, i) => {
    if (ensureSpace(doc, ROW_HEIGHT)) tableRow(doc, header, widths, { bold: true, swatches });
    const counts = DEFECT_CLASSES.map((c) => String(image.detections.filter((d) => d.class === c).length));
    tableRow(doc, [String(i + 1), image.filename, image.status, ...counts], widths);
  });
}

function drawImageSection(doc: Doc, image: ReportImage, index: number, total: number, picture: Picture) {
  doc
    .font(BODY)
    .fontSize(9)
    .fillColor(MUTED)
    .text(`Image ${index + 1} of ${total}`);
  doc.fillColor(TEXT);
  paragraph(doc, image.filename, { weight: "bold", size: 14, width: CONTENT_WIDTH });
  const size = image.width && image.height ? ` · ${image.width} × ${image.height} px` : "";
  const found = image.detections.length === 1 ? "1 defect" : `${image.detections.length} defects`;
  doc.moveDown(0.2).font(BODY).fontSize(10).fillColor(MUTED).text(`Status: ${image.status}${size} · ${found}`);
  if (image.status === "failed") {
    doc.fillColor(CLASS_COLOURS.crack);
    paragraph(doc, `Detection failed: ${image.error ?? "no reason recorded"}`, {
      weight: "regular",
      size: 10,
      width: CONTENT_WIDTH,
    });
  }
  doc.moveDown(0.5);

  if ("prepared" in picture) drawAnnotatedImage(doc, image, picture.prepared);
  else drawPlaceholder(doc, picture.unavailable);
  drawDefectList(doc, image);
}

function drawPlaceholder(doc: Doc, reason: string) {
  const y = doc.y;
  doc.rect(PAGE.margin, y, CONTENT_WIDTH, 60).fillAndStroke("#f2f2f2", RULE);
  doc
    .font(BODY)
    .fontSize(10)
    .fillColor(MUTED)
    .text(`Image not shown: ${reason}.`, PAGE.margin + 10, y + 24, { width: CONTENT_WIDTH - 20 });
  doc.x = PAGE.margin;
  doc.y = y + 70;
}

function drawAnnotatedImage(doc: Doc, image: ReportImage, prepared: PreparedImage) {
  const { originalWidth, originalHeight } = prepared;
  const scale = Math.min(CONTENT_WIDTH / originalWidth, IMAGE_MAX_HEIGHT / originalHeight);
  const width = originalWidth * scale;
  const height = originalHeight * scale;
  const left = PAGE.margin + (CONTENT_WIDTH - width) / 2;
  const top = doc.y;
  doc.image(prepared.jpeg, left, top, { width, height });
  doc.rect(left, top, width, height).lineWidth(0.5).strokeColor(RULE).stroke();

  // boxes first, labels after: a label is never hidden under a neighbour's box outline
  image.detections.forEach((d) => {
    const [x1, y1, x2, y2] = d.box;
    doc
      .rect(left + x1 * scale, top + y1 * scale, Math.max((x2 - x1) * scale, 1), Math.max((y2 - y1) * scale, 1))
      .lineWidth(1.2)
      .strokeColor(CLASS_COLOURS[d.class])
      .stroke();
  });
  doc.font(BOLD).fontSize(7);
  image.detections.forEach((d, i) => {
    const label = `${i + 1} ${d.class} ${d.score.toFixed(2)}`;
    const labelWidth = doc.widthOfString(label) + 4;
    const labelHeight = 9;
    const boxLeft = left + d.box[0] * scale;
    const boxTop = top + d.box[1] * scale;
    // above the box, or inside its top edge when the box touches the image's top
    const x = Math.min(Math.max(boxLeft, left), left + width - labelWidth);
    const y = boxTop - labelHeight >= top ? boxTop - labelHeight : boxTop;
    doc.rect(x, y, labelWidth, labelHeight).fill(CLASS_COLOURS[d.class]);
    doc.fillColor(d.class === "inclusion" ? "#000000" : "#ffffff").text(label, x + 2, y + 1.5, { lineBreak: false });
  });
  doc.x = PAGE.margin;
  doc.y = top + height + 12;
}

function drawDefectList(doc: Doc, image: ReportImage) {
  if (image.detections.length === 0) {
    doc
      .font(BODY)
      .fontSize(10)
      .fillColor(TEXT)
      .text(image.status === "done" ? "No defects found." : "No detections.");
    return;
  }
  const widths = [30, 120, 80, CONTENT_WIDTH - 230];
  const header = ["#", "Class", "Score", "Box (x1, y1, x2, y2) px"];
  ensureSpace(doc, 2 * ROW_HEIGHT);
  tableRow(doc, header, widths, { bold: true });
  image.detections.forEach((d, i) => {
    if (ensureSpace(doc, ROW_HEIGHT)) tableRow(doc, header, widths, { bold: true });
    tableRow(doc, [String(i + 1), CLASS_LABELS[d.class], d.score.toFixed(2), formatBox(d.box)], widths, {
      swatches: [undefined, CLASS_COLOURS[d.class]],
    });
  });
}
