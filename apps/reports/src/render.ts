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
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import PDFDocument from "pdfkit";
import sharp from "sharp";
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

/**
 * DejaVu Sans, regular and bold, embedded as subsets (only the glyphs used). The standard PDF fonts encode only
 * Windows-1252, so a Polish, Czech, Greek or Russian title printed as "?"; DejaVu covers Latin in full, Greek,
 * Cyrillic and more. Read once per process.
 */
const requireFromHere = createRequire(import.meta.url);
const FONT_DIR = join(dirname(requireFromHere.resolve("dejavu-fonts-ttf/package.json")), "ttf");
const FONT_FILES = {
  body: readFileSync(join(FONT_DIR, "DejaVuSans.ttf")),
  bold: readFileSync(join(FONT_DIR, "DejaVuSans-Bold.ttf")),
};
const BODY = "body";
const BOLD = "bold";

/** fontkit (pdfkit's font engine, untyped): only the glyph lookup is used here. */
const fontkit = requireFromHere("fontkit") as {
  create(bytes: Buffer): { hasGlyphForCodePoint(codePoint: number): boolean };
};
const fontsInUse = [fontkit.create(FONT_FILES.body), fontkit.create(FONT_FILES.bold)];

/**
 * Text as both fonts can draw it: a character they have no glyph for (a CJK filename, an emoji) becomes "?" rather
 * than an empty box; control characters go too.
 */
export function pdfSafeText(text: string): string {
  let safe = "";
  for (const character of text) {
    const codePoint = character.codePointAt(0)!;
    const drawable = codePoint >= 0x20 && fontsInUse.every((font) => font.hasGlyphForCodePoint(codePoint));
    safe += drawable && !(codePoint >= 0x7f && codePoint < 0xa0) ? character : "?";
  }
  return safe;
}

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
      Title: pdfSafeText(`Inspection report: ${data.inspection.title}`),
      Subject: `Inspection ${data.inspection.id}`,
      Author: "ndt-platform",
      Creator: "ndt-platform reports",
      Producer: "ndt-platform reports (pdfkit)",
      Keywords: `report ${opts.hash}`,
      CreationDate: created,
      ModDate: created,
    },
  });
  doc.registerFont(BODY, FONT_FILES.body);
  doc.registerFont(BOLD, FONT_FILES.bold);
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

function heading(doc: Doc, text: string, size = 13) {
  doc.moveDown(0.6).font(BOLD).fontSize(size).fillColor(TEXT).text(pdfSafeText(text));
  doc.moveDown(0.3);
}

function drawHeader(doc: Doc, data: ReportData, hash: string) {
  const { inspection } = data;
  doc.font(BODY).fontSize(10).fillColor(MUTED).text("NDT weld radiograph inspection report");
  doc.moveDown(0.3).font(BOLD).fontSize(20).fillColor(TEXT).text(pdfSafeText(inspection.title));
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
    doc
      .font(BODY)
      .fillColor(TEXT)
      .text(pdfSafeText(value), PAGE.margin + 90, y, { width: CONTENT_WIDTH - 90 });
    doc.moveDown(0.2);
  }
  if (inspection.notes) {
    doc.x = PAGE.margin;
    heading(doc, "Notes", 11);
    doc.font(BODY).fontSize(10).fillColor(TEXT).text(pdfSafeText(inspection.notes), { width: CONTENT_WIDTH });
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
  doc.font(opts.bold ? BOLD : BODY).fontSize(10);
  cells.forEach((cell, i) => {
    const width = widths[i] ?? 60;
    const swatch = opts.swatches?.[i];
    let textX = x + 4;
    if (swatch) {
      doc.rect(x + 4, y + 3, 8, 8).fill(swatch);
      textX += 12;
    }
    doc
      .fillColor(TEXT)
      .text(pdfSafeText(cell), textX, y + 3, { width: width - (textX - x) - 4, height: 11, ellipsis: true });
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
  doc.font(BOLD).fontSize(14).fillColor(TEXT).text(pdfSafeText(image.filename), { width: CONTENT_WIDTH });
  const size = image.width && image.height ? ` · ${image.width} × ${image.height} px` : "";
  const found = image.detections.length === 1 ? "1 defect" : `${image.detections.length} defects`;
  doc.moveDown(0.2).font(BODY).fontSize(10).fillColor(MUTED).text(`Status: ${image.status}${size} · ${found}`);
  if (image.status === "failed") {
    doc
      .fillColor(CLASS_COLOURS.crack)
      .text(pdfSafeText(`Detection failed: ${image.error ?? "no reason recorded"}`), { width: CONTENT_WIDTH });
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
