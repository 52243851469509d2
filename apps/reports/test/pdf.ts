/** Reading PDFs back in tests: pdf.js (the legacy build runs on Node without a DOM) extracts each page's text. */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { getDocument } from "pdfjs-dist/legacy/build/pdf.mjs";

const require = createRequire(import.meta.url);
// the standard fonts' metrics, so pdf.js does not warn about Helvetica on every page
const standardFontDataUrl = `${join(dirname(require.resolve("pdfjs-dist/package.json")), "standard_fonts")}/`;

export interface ParsedPdf {
  pages: string[];
  /** Every page's text, items separated by single spaces (items that touch on a line joined as they are). */
  text: string;
  info: Record<string, unknown>;
}

export async function parsePdf(bytes: Buffer): Promise<ParsedPdf> {
  const pdf = await getDocument({
    data: new Uint8Array(bytes),
    standardFontDataUrl,
    isEvalSupported: false,
    verbosity: 0,
  }).promise;
  try {
    const pages: string[] = [];
    for (let n = 1; n <= pdf.numPages; n++) {
      const content = await (await pdf.getPage(n)).getTextContent();
      let page = "";
      let end: { x: number; y: number } | undefined;
      for (const item of content.items) {
        if (!("str" in item) || item.str.trim() === "") continue;
        const [x, y] = [item.transform[4] as number, item.transform[5] as number];
        // runs of one word in different fonts are separate items that touch: joined without a space
        const touches = end !== undefined && Math.abs(end.y - y) < 0.01 && Math.abs(end.x - x) < 0.5;
        page += page === "" || touches ? item.str : ` ${item.str}`;
        end = { x: x + item.width, y };
      }
      pages.push(page.replace(/\s+/g, " "));
    }
    const { info } = (await pdf.getMetadata()) as unknown as { info: Record<string, unknown> };
    return { pages, text: pages.join("\n"), info };
  } finally {
    await pdf.destroy();
  }
}

/** A piece of text on a page and where it starts (PDF points, origin bottom left). */
export interface PlacedText {
  page: number;
  text: string;
  x: number;
  y: number;
}

/** Every non-blank text item with its position: to tell a line break from a space. */
export async function placedText(bytes: Buffer): Promise<PlacedText[]> {
  const pdf = await getDocument({ data: new Uint8Array(bytes), standardFontDataUrl, verbosity: 0 }).promise;
  try {
    const placed: PlacedText[] = [];
    for (let n = 1; n <= pdf.numPages; n++) {
      for (const item of (await (await pdf.getPage(n)).getTextContent()).items) {
        if ("str" in item && item.str.trim() !== "") {
          placed.push({ page: n, text: item.str, x: item.transform[4] as number, y: item.transform[5] as number });
        }
      }
    }
    return placed;
  } finally {
    await pdf.destroy();
  }
}

/** How many images each page paints. */
export async function imagesPerPage(bytes: Buffer): Promise<number[]> {
  const { OPS } = await import("pdfjs-dist/legacy/build/pdf.mjs");
  const pdf = await getDocument({ data: new Uint8Array(bytes), standardFontDataUrl, verbosity: 0 }).promise;
  try {
    const counts: number[] = [];
    for (let n = 1; n <= pdf.numPages; n++) {
      const ops = await (await pdf.getPage(n)).getOperatorList();
      counts.push(ops.fnArray.filter((fn) => fn === OPS.paintImageXObject).length);
    }
    return counts;
  } finally {
    await pdf.destroy();
  }
}
