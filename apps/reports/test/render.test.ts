/**
 * The PDF itself, rendered from in-memory rows and images (no servers): what it says, what it shows, and that the
 * same data gives the same bytes. Parsed back with pdf.js.
 */
import { describe, expect, it } from "vitest";
import { type ReportData, type ReportDetection, type ReportImage, reportHash, summarize } from "../src/model.js";
import sharp from "sharp";
import { type FontWeight, metadataText, textLines, textRuns } from "../src/fonts.js";
import { DEFAULT_RENDER_SETTINGS, prepareImage, renderReportToBuffer } from "../src/render.js";
import { radiograph } from "./images.js";
import { imagesPerPage, parsePdf, placedText } from "./pdf.js";

const ORG = "6d1f4a8e-1c9b-4a57-9d6c-1a2b3c4d5e6f";
const INSPECTION = "0c9e9b1e-5a1f-4d7e-8a3b-1f2e3d4c5b6a";

function image(id: string, filename: string, detections: ReportDetection[], extra: Partial<ReportImage> = {}) {
  return {
    id,
    filename,
    status: "done",
    width: 640,
    height: 400,
    error: null,
    contentType: "image/png",
    size: 1234,
    objectKey: `${ORG}/${INSPECTION}/${id}`,
    detections,
    ...extra,
  } satisfies ReportImage;
}

const IDS = {
  a: "11111111-1111-4111-8111-111111111111",
  b: "22222222-2222-4222-8222-222222222222",
  c: "33333333-3333-4333-8333-333333333333",
  d: "44444444-4444-4444-8444-444444444444",
};

function sampleData(): ReportData {
  return {
    inspection: {
      id: INSPECTION,
      organizationId: ORG,
      title: "Pipeline weld 7A",
      site: "North yard",
      notes: "Shot with 2 mm lead screens.",
      status: "open",
      createdAt: "2026-11-30T08:15:00.000Z",
    },
    images: [
      image(IDS.a, "weld-7a-01.png", [
        { class: "porosity", score: 0.93, box: [100, 150, 124, 174] },
        { class: "porosity", score: 0.81, box: [300, 200, 316, 216] },
        { class: "crack", score: 0.88, box: [400, 160, 520, 190] },
      ]),
      image(IDS.b, "weld-7a-02.jpg", [{ class: "inclusion", score: 0.77, box: [50, 180, 90, 200] }], {
        contentType: "image/jpeg",
      }),
      image(IDS.c, "broken.png", [], { status: "failed", error: "not a decodable image", width: null, height: null }),
      image(IDS.d, "gone.png", []),
    ],
  };
}

async function sampleImages(): Promise<Map<string, Buffer>> {
  return new Map([
    [
      IDS.a,
      await radiograph(640, 400, [
        { cx: 112, cy: 162, r: 12, level: 60 },
        { cx: 308, cy: 208, r: 8, level: 70 },
      ]),
    ],
    [IDS.b, await radiograph(640, 400, [{ cx: 70, cy: 190, r: 10, level: 220 }], "jpeg")],
    [IDS.c, Buffer.from("this is not an image at all")],
    // IDS.d: its object is missing
  ]);
}

async function render(data: ReportData, images: Map<string, Buffer>) {
  const hash = reportHash(data, DEFAULT_RENDER_SETTINGS);
  return renderReportToBuffer(data, {
    hash,
    settings: DEFAULT_RENDER_SETTINGS,
    loadImage: async (img) => images.get(img.id) ?? null,
  });
}

describe("report PDF", () => {
  it("has the header and the summary table with the counts per defect class", async () => {
    const data = sampleData();
    const pdf = await parsePdf(await render(data, await sampleImages()));
    const first = pdf.pages[0]!;
    expect(first).toContain("Pipeline weld 7A");
    expect(first).toContain(`Inspection ${INSPECTION}`);
    expect(first).toContain("Site North yard");
    expect(first).toContain("Created 2026-11-30 08:15:00 UTC");
    expect(first).toContain("Shot with 2 mm lead screens.");
    // images, done, failed, porosity, crack, inclusion
    expect(first).toContain("Images Done Failed Porosity Crack Inclusion 4 3 1 2 1 1");
    expect(summarize(data.images)).toEqual({
      images: 4,
      done: 3,
      failed: 1,
      defects: { porosity: 2, crack: 1, inclusion: 1 },
    });
    // the index: one row per image with its counts per class
    expect(first).toContain("1 weld-7a-01.png done 2 1 0");
    expect(first).toContain("2 weld-7a-02.jpg done 0 0 1");
    expect(first).toContain("3 broken.png failed 0 0 0");
    expect(pdf.info.Title).toBe("Inspection report: Pipeline weld 7A");
  });

  it("gives each image its page: the picture with labelled boxes, then its defect list", async () => {
    const bytes = await render(sampleData(), await sampleImages());
    const pdf = await parsePdf(bytes);
    expect(pdf.pages).toHaveLength(5);
    const [, a, b, c, d] = pdf.pages;
    expect(a).toContain("Image 1 of 4 weld-7a-01.png");
    expect(a).toContain("Status: done · 640 × 400 px · 3 defects");
    // labels drawn on the image
    expect(a).toContain("1 porosity 0.93");
    expect(a).toContain("2 crack 0.88");
    expect(a).toContain("3 porosity 0.81");
    // the list, best score first
    expect(a).toContain("1 Porosity 0.93 100, 150, 124, 174 2 Crack 0.88 400, 160, 520, 190 3 Porosity 0.81");
    expect(b).toContain("1 Inclusion 0.77 50, 180, 90, 200");
    expect(c).toContain("Detection failed: not a decodable image");
    expect(c).toContain("Image not shown: the image could not be decoded.");
    expect(d).toContain("Image not shown: the image is missing from storage.");
    expect(d).toContain("No defects found.");
    // the two decodable images are embedded, nothing on the other pages
    expect(await imagesPerPage(bytes)).toEqual([0, 1, 1, 0, 0]);
  });

  it("is byte-identical for the same data, and dated from the inspection, not the clock", async () => {
    const images = await sampleImages();
    const first = await render(sampleData(), images);
    const second = await render(sampleData(), images);
    expect(second.equals(first)).toBe(true);
    const pdf = await parsePdf(first);
    expect(String(pdf.info.CreationDate)).toMatch(/^D:20261130081500/);
  });

  it("renders an inspection without images", async () => {
    const data = { ...sampleData(), images: [] };
    const pdf = await parsePdf(await render(data, new Map()));
    expect(pdf.pages).toHaveLength(1);
    expect(pdf.text).toContain("Images Done Failed Porosity Crack Inclusion 0 0 0 0 0 0");
    expect(pdf.text).toContain("No images were uploaded to this inspection.");
  });

  it("continues a long defect list on the next page with its header repeated", async () => {
    const many: ReportDetection[] = Array.from({ length: 60 }, (_, i) => ({
      class: "porosity",
      score: 0.99 - i / 100,
      box: [10 + i, 10, 20 + i, 20],
    }));
    const data = { ...sampleData(), images: [image(IDS.a, "crowded.png", many)] };
    const pdf = await parsePdf(await render(data, new Map([[IDS.a, await radiograph(640, 400, [])]])));
    expect(pdf.pages.length).toBeGreaterThan(2);
    expect(pdf.text).toContain("60 Porosity 0.40");
    expect(pdf.pages[2]).toMatch(/^# Class Score Box/);
  });

  it("continues a long image index on the next page with its header repeated", async () => {
    const images = Array.from({ length: 70 }, (_, i) =>
      image(`00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, `shot-${i + 1}.png`, []),
    );
    const pdf = await parsePdf(await render({ ...sampleData(), images }, new Map()));
    expect(pdf.pages).toHaveLength(2 + 70);
    expect(pdf.pages[0]).toContain("1 shot-1.png done 0 0 0");
    expect(pdf.pages[1]).toMatch(/^# File Status Porosity Crack Inclusion \d+ shot-\d+\.png done/);
    expect(pdf.pages[1]).toContain("70 shot-70.png done 0 0 0");
    expect(pdf.pages[2]).toMatch(/^Image 1 of 70 shot-1\.png/);
  });

  it("fails the stream when an image cannot be fetched (not a report with a silent hole)", async () => {
    const data = sampleData();
    const images = await sampleImages();
    const outage = new Error("object store unreachable");
    const rendering = renderReportToBuffer(data, {
      hash: reportHash(data, DEFAULT_RENDER_SETTINGS),
      settings: DEFAULT_RENDER_SETTINGS,
      loadImage: async (img) => {
        if (img.id === IDS.b) throw outage;
        return images.get(img.id) ?? null;
      },
    });
    await expect(rendering).rejects.toBe(outage);
  });

  it("orients an image by its EXIF tag, as the detector does, so boxes land on its pixels", async () => {
    // stored 400 × 200 with "rotate 90° clockwise to display": the detector sees 200 × 400
    const stored = await sharp(await radiograph(400, 200, []))
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(stored).metadata()).orientation).toBe(6);
    const prepared = await prepareImage(stored, 1600, 85);
    expect([prepared.originalWidth, prepared.originalHeight]).toEqual([200, 400]);
    const embedded = await sharp(prepared.jpeg).metadata();
    expect([embedded.width, embedded.height, embedded.orientation ?? 1]).toEqual([200, 400, 1]);

    const downscaled = await prepareImage(await radiograph(2000, 1000, []), 1600, 85);
    expect([downscaled.originalWidth, downscaled.originalHeight]).toEqual([2000, 1000]);
    const small = await sharp(downscaled.jpeg).metadata();
    expect([small.width, small.height]).toEqual([1600, 800]);
  });

  it("prints titles, sites and file names in Polish, Greek and Cyrillic as they are", async () => {
    const data = sampleData();
    data.inspection.title = "Spoina łączona 7A";
    data.inspection.site = "Площадка Север";
    data.images[0]!.filename = "ραφή-01.png";
    const pdf = await parsePdf(await render(data, await sampleImages()));
    expect(pdf.pages[0]).toContain("Spoina łączona 7A");
    expect(pdf.pages[0]).toContain("Site Площадка Север");
    expect(pdf.pages[0]).toContain("1 ραφή-01.png done 2 1 0");
    expect(pdf.info.Title).toBe("Inspection report: Spoina łączona 7A");
  });

  it("prints Latin, Greek, Cyrillic, Japanese and Korean titles as they are, in fonts that have them", async () => {
    const data = sampleData();
    data.inspection.title = "Schweißnaht Ω Сварной 溶接 검사";
    data.images[1]!.filename = "용접-02 🙂.jpg";
    const bytes = await render(data, await sampleImages());
    const pdf = await parsePdf(bytes);
    expect(pdf.pages[0]).toContain("Schweißnaht Ω Сварной 溶接 검사");
    expect(pdf.pages[0]).toContain("2 용접-02 🙂.jpg done 0 0 1");
    expect(pdf.pages[2]).toContain("Image 2 of 4 용접-02 🙂.jpg");
    expect(pdf.text).not.toContain("?");
    expect(pdf.text).not.toContain("\uFFFD");
    expect(pdf.info.Title).toBe("Inspection report: Schweißnaht Ω Сварной 溶接 검사");
    // the CJK and emoji glyphs come from the fallback fonts, embedded as subsets
    const fonts = new Set(bytes.toString("latin1").match(/(?<=\/BaseFont \/[A-Z]{6}\+)[\w-]+/g));
    expect(fonts).toEqual(
      new Set([
        "DejaVuSans",
        "DejaVuSans-Bold",
        "NotoSansKR-Regular",
        "NotoSansKR-Bold",
        "NotoEmoji-Regular",
        "NotoEmoji-Bold",
      ]),
    );
  });

  it("prints each line of the notes on a line of its own", async () => {
    const data = sampleData();
    data.inspection.notes = "line one\nline two";
    const bytes = await render(data, await sampleImages());
    const pdf = await parsePdf(bytes);
    expect(pdf.pages[0]).toContain("Notes line one line two");
    expect(pdf.text).not.toContain("?");
    const placed = await placedText(bytes);
    const one = placed.find((item) => item.text === "line one")!;
    const two = placed.find((item) => item.text === "line two")!;
    expect(two.x).toBe(one.x);
    expect(one.y - two.y).toBeCloseTo(10 * 1.164, 1); // one line of 10 pt DejaVu Sans lower
  });

  it("renders what no font has as U+FFFD and drops control characters, without failing", async () => {
    const data = sampleData();
    data.inspection.title = "Spoina \u0007焊接 \uD800\u{10FFFF}";
    data.inspection.notes = "tab\there\u0000\u001b[31m";
    data.images[0]!.filename = "\u200Bweld\u0085.png";
    const pdf = await parsePdf(await render(data, await sampleImages()));
    // 焊 (Chinese) is in none of the fonts, 接 (Chinese, Japanese and Korean) is
    expect(pdf.pages[0]).toContain("Spoina \uFFFD接 \uFFFD\uFFFD");
    expect(pdf.pages[0]).toContain("Notes tab here[31m");
    expect(pdf.pages[0]).toContain("1 weld .png done 2 1 0");
    expect(pdf.info.Title).toBe("Inspection report: Spoina 焊接 \uFFFD\u{10FFFF}");
  });
});

describe("text runs", () => {
  const faces = (text: string, weight: FontWeight = "regular") =>
    textLines(text, weight).map((line) => line.map((run) => [run.face.name, run.text]));

  it("draws each character in the first font that has it, spaces and punctuation staying in their run", () => {
    expect(faces("Spoina łączona Ωμέγα Сварной")).toEqual([[["DejaVuSans", "Spoina łączona Ωμέγα Сварной"]]]);
    expect(faces("Weld 溶接, 검사 🙂 ok", "bold")).toEqual([
      [
        ["DejaVuSans-Bold", "Weld "],
        ["NotoSansKR-Bold", "溶接, 검사 "],
        ["NotoEmoji-Bold", "🙂"],
        ["DejaVuSans-Bold", " ok"],
      ],
    ]);
    // a joined emoji stays one run (the font's ligature); the presentation selector goes with the heart
    expect(faces("👨‍👩‍👧❤️")).toEqual([
      [
        ["NotoEmoji", "👨‍👩‍👧"],
        ["DejaVuSans", "❤️"],
      ],
    ]);
  });

  it("splits lines at any line break, turns tabs into spaces and drops other control characters", () => {
    expect(faces("one\ntwo\r\nthree\rfour\u2028five\n\nseven")).toEqual([
      [["DejaVuSans", "one"]],
      [["DejaVuSans", "two"]],
      [["DejaVuSans", "three"]],
      [["DejaVuSans", "four"]],
      [["DejaVuSans", "five"]],
      [],
      [["DejaVuSans", "seven"]],
    ]);
    expect(faces("a\tb\u0000c\u001bd\u007fe\u009bf")).toEqual([[["DejaVuSans", "a bcdef"]]]);
    expect(textRuns("line one\nline two", "regular").map((run) => run.text)).toEqual(["line one line two"]);
  });

  it("prints U+FFFD for a character no font has, composes decomposed accents", () => {
    expect(faces("焊\uD800\u{E000}x")).toEqual([[["DejaVuSans", "\uFFFD\uFFFD\uFFFDx"]]]);
    expect(faces("Schwei\u00DFnaht Cafe\u0301")).toEqual([[["DejaVuSans", "Schweißnaht Café"]]]);
  });

  it("keeps every character for the document's metadata but control characters and lone surrogates", () => {
    expect(metadataText("溶接 검사 🙂\nline\ttwo\u0007")).toBe("溶接 검사 🙂 line two");
    expect(metadataText("a\uD800b\uDC00c\uD83D\uDE42")).toBe("a\uFFFDb\uFFFDc🙂");
  });
});

describe("report hash", () => {
  const hash = (data: ReportData) => reportHash(data, DEFAULT_RENDER_SETTINGS);

  it("is stable for the same data whatever the property and detection order", () => {
    const data = sampleData();
    const reversed = (value: unknown): unknown =>
      Array.isArray(value)
        ? value.map(reversed)
        : value !== null && typeof value === "object"
          ? Object.fromEntries(
              Object.entries(value)
                .reverse()
                .map(([k, v]) => [k, reversed(v)]),
            )
          : value;
    const reordered = reversed(data) as ReportData;
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(data));
    expect(hash(reordered)).toBe(hash(data));
    const shuffled = sampleData();
    shuffled.images[0]!.detections.reverse();
    expect(hash(shuffled)).toBe(hash(data));
    expect(hash(sampleData())).toMatch(/^[0-9a-f]{64}$/);
  });

  it("changes with anything the report shows, and with the render settings", () => {
    const base = hash(sampleData());
    const changed: ((d: ReportData) => void)[] = [
      (d) => (d.inspection.title = "Pipeline weld 7B"),
      (d) => (d.inspection.notes = null),
      (d) => d.images[0]!.detections.pop(),
      (d) => (d.images[0]!.detections[0]!.score = 0.92),
      (d) => (d.images[0]!.detections[0]!.box[2] = 125),
      (d) => (d.images[3]!.status = "failed"),
      (d) => d.images.pop(),
    ];
    const hashes = changed.map((change) => {
      const data = sampleData();
      change(data);
      return hash(data);
    });
    for (const h of hashes) expect(h).not.toBe(base);
    expect(new Set(hashes).size).toBe(hashes.length);
    expect(reportHash(sampleData(), { ...DEFAULT_RENDER_SETTINGS, jpegQuality: 70 })).not.toBe(base);
  });
});

describe("report PDF layout", () => {
  it("cuts a long file name in the index with an ellipsis instead of wrapping into the next row", async () => {
    const long = `${"very-long-radiograph-name-".repeat(8)}end.png`;
    const data = { ...sampleData(), images: [image(IDS.a, long, [])] };
    const pdf = await parsePdf(await render(data, new Map([[IDS.a, await radiograph(320, 320, [])]])));
    const row = /1 (very-long-radiograph-name-\S*…) done 0 0 0/.exec(pdf.pages[0]!);
    expect(row).not.toBeNull();
    expect(row![1]!.length).toBeLessThan(long.length);
    // the image's own page shows the whole name
    expect(pdf.pages[1]!.replace(/ /g, "")).toContain(long);
  });
});
