/**
 * The fonts the report is printed in, and how a piece of text is split among them.
 *
 * The standard PDF fonts encode only Windows-1252, so anything else (Polish, Greek, Cyrillic, CJK, emoji) printed as
 * "?". Three embedded font families, tried in order for each character, cover it instead:
 * - DejaVu Sans (npm dejavu-fonts-ttf): Latin with its extensions, Greek, Cyrillic, most symbols; the look of the
 *   report, since it draws everything it can;
 * - Noto Sans KR (npm @expo-google-fonts/noto-sans-kr): all of Hangul, kana, and the 8,138 Han ideographs of Korean
 *   and most of Japanese (90% of JIS level 1 kanji; Chinese-only ideographs such as 焊 are not in it);
 * - Noto Emoji (npm @expo-google-fonts/noto-emoji): monochrome emoji.
 * Static TrueType files, a regular and a bold weight of each: fontkit 2.0.4 cannot subset a variable font
 * (foliojs/fontkit#308), which is what the small @fontsource-variable packages hold, and the static @fontsource ones
 * are as large as these and cut into some 120 files per weight. pdfkit embeds only the glyphs a report uses.
 *
 * The files are read and parsed once per process and the parsed fonts are handed to every document: pdfkit would
 * otherwise parse each file again for each report.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export type FontWeight = "regular" | "bold";

/** fontkit's font object (fontkit ships no types): what this module reads; pdfkit uses the rest. */
interface FontkitFont {
  hasGlyphForCodePoint(codePoint: number): boolean;
  layout(text: string): unknown;
  unitsPerEm: number;
  ascent: number;
  descent: number;
  lineGap: number;
}

export interface FontFace {
  /** The name it is registered under in each document. */
  name: string;
  font: FontkitFont;
  /** Top of the line to baseline, in ems. */
  ascender: number;
  /** Baseline to baseline with the font's own gap, in ems. */
  lineHeight: number;
  /** Emoji: spaces and punctuation after its symbols go back to a text face (its space is an emoji wide). */
  symbolsOnly: boolean;
}

/** A stretch of text drawn in one face. */
export interface TextRun {
  face: FontFace;
  text: string;
}

const requireFromHere = createRequire(import.meta.url);
const fontkit = requireFromHere("fontkit") as { create(bytes: Buffer): FontkitFont };

function loadFace(name: string, packageName: string, file: string, symbolsOnly = false): FontFace {
  const path = join(dirname(requireFromHere.resolve(`${packageName}/package.json`)), file);
  const font = fontkit.create(readFileSync(path));
  return {
    name,
    font,
    ascender: font.ascent / font.unitsPerEm,
    lineHeight: (font.ascent - font.descent + font.lineGap) / font.unitsPerEm,
    symbolsOnly,
  };
}

/** Per weight, in the order a character's font is chosen; the first is the report's own. */
const FACES: Record<FontWeight, readonly FontFace[]> = {
  regular: [
    loadFace("DejaVuSans", "dejavu-fonts-ttf", "ttf/DejaVuSans.ttf"),
    loadFace("NotoSansKR", "@expo-google-fonts/noto-sans-kr", "400Regular/NotoSansKR_400Regular.ttf"),
    loadFace("NotoEmoji", "@expo-google-fonts/noto-emoji", "400Regular/NotoEmoji_400Regular.ttf", true),
  ],
  bold: [
    loadFace("DejaVuSans-Bold", "dejavu-fonts-ttf", "ttf/DejaVuSans-Bold.ttf"),
    loadFace("NotoSansKR-Bold", "@expo-google-fonts/noto-sans-kr", "700Bold/NotoSansKR_700Bold.ttf"),
    loadFace("NotoEmoji-Bold", "@expo-google-fonts/noto-emoji", "700Bold/NotoEmoji_700Bold.ttf", true),
  ],
};

/** The face that sets the report's look, line height and baseline. */
export function primaryFace(weight: FontWeight): FontFace {
  return FACES[weight][0]!;
}

/**
 * Make every face known to the document. The parsed font object is passed where @types/pdfkit lists only a path or
 * bytes: pdfkit takes any object with `layout()` as a ready font (PDFFontFactory.open).
 */
export function registerFonts(doc: PDFKit.PDFDocument): void {
  for (const face of [...FACES.regular, ...FACES.bold]) doc.registerFont(face.name, face.font as unknown as Buffer);
}

/** Printed for a character that no face has. */
const REPLACEMENT = "\uFFFD";
const LINE_BREAK = /\r\n|[\n\r\v\f\u0085\u2028\u2029]/;
const CONTROL = /^\p{Cc}$/u;
/** Invisible characters that only modify their neighbours (joiners, variation selectors, marks, bidi controls). */
const ATTACHED = /^[\p{Cf}\p{M}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]$/u;
/** Characters any face draws alike: kept in the run they follow, so a space or a comma does not switch fonts. */
const NEUTRAL = /^[\p{Zs}\p{P}]$/u;

/**
 * The text's lines (its own line breaks; none are added for width), each as runs of characters drawn by one face:
 * each character in the first face that has it. Tabs become spaces; other control characters are dropped; a
 * character no face has is printed as U+FFFD (not "?", which could be the text's own).
 */
export function textLines(text: string, weight: FontWeight): TextRun[][] {
  return text
    .normalize("NFC")
    .split(LINE_BREAK)
    .map((line) => lineRuns(line, FACES[weight]));
}

/** One line of runs: line breaks become spaces (table cells, whose height is one line). */
export function textRuns(text: string, weight: FontWeight): TextRun[] {
  return textLines(text, weight)
    .map((runs, i) => (i === 0 ? runs : [{ face: primaryFace(weight), text: " " }, ...runs]))
    .flat()
    .reduce(appendRun, []);
}

function lineRuns(line: string, faces: readonly FontFace[]): TextRun[] {
  const runs: TextRun[] = [];
  for (let character of line) {
    if (character === "\t") character = " ";
    if (CONTROL.test(character)) continue;
    const codePoint = character.codePointAt(0)!;
    const current = runs.at(-1)?.face;
    const keepsRun =
      current !== undefined &&
      (ATTACHED.test(character) || (NEUTRAL.test(character) && !current.symbolsOnly)) &&
      hasGlyph(current, codePoint);
    if (keepsRun) {
      appendRun(runs, { face: current, text: character });
      continue;
    }
    const face = faces.find((candidate) => hasGlyph(candidate, codePoint));
    if (face) appendRun(runs, { face, text: character });
    // an invisible modifier no face has changes nothing visible: dropped rather than shown as a missing glyph
    else if (!ATTACHED.test(character)) appendRun(runs, { face: faces[0]!, text: REPLACEMENT });
  }
  return runs;
}

function hasGlyph(face: FontFace, codePoint: number): boolean {
  return face.font.hasGlyphForCodePoint(codePoint);
}

function appendRun(runs: TextRun[], run: TextRun): TextRun[] {
  const last = runs.at(-1);
  if (last && last.face === run.face) last.text += run.text;
  else runs.push({ ...run });
  return runs;
}

/** Half a UTF-16 pair: not encodable, so the whole title would be unreadable. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text for the document's metadata (title), which PDF stores as UTF-16 and viewers show in their own fonts: every
 * character kept but control characters (line breaks as spaces) and halves of UTF-16 pairs (as U+FFFD).
 */
export function metadataText(text: string): string {
  return text
    .normalize("NFC")
    .split(LINE_BREAK)
    .join(" ")
    .replace(/\t/g, " ")
    .replace(/\p{Cc}/gu, "")
    .replace(LONE_SURROGATE, REPLACEMENT);
}
