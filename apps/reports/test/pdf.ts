/** Reading PDFs back in tests: pdf.js (the legacy build runs on Node without a DOM) extracts each page's text. */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { getDocument } from "pdfjs-dist/legacy/build/pdf.mjs";

const require = createRequire(import.meta.url);
// the standard fonts' metrics, so pdf.js does not warn about Helvetica on every page
const standardFontDataUrl = `${join(dirname(require.resolve("pdfjs-dist/package.json")), "standard_fonts")}/`;

export interface ParsedPdf {
  pages: string[];
  /** Every page's text, items separated by single spaces. */
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
      const items = content.items.map((item) => ("str" in item ? item.str : "")).filter((s) => s.trim() !== "");
      pages.push(items.join(" ").replace(/\s+/g, " "));
    }
    const { info } = (await pdf.getMetadata()) as unknown as { info: Record<string, unknown> };
    return { pages, text: pages.join("\n"), info };
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
