import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeOutput, iou, nms } from "../src/inference/decode.js";
import { letterboxGeometry, toChw, unletterboxBox } from "../src/inference/geometry.js";
import { ImageDecodeError, letterboxImage } from "../src/inference/letterbox.js";
import { parseImgsz, parseNames } from "../src/inference/metadata.js";

describe("letterbox geometry (Ultralytics arithmetic)", () => {
  it("fits a wide image, centring it vertically", () => {
    const g = letterboxGeometry(1024, 512, 640, 640);
    expect(g).toMatchObject({ scale: 0.625, newWidth: 640, newHeight: 320, padLeft: 0, padTop: 160 });
  });
  it("upscales a small image", () => {
    const g = letterboxGeometry(320, 240, 640, 640);
    expect(g).toMatchObject({ scale: 2, newWidth: 640, newHeight: 480, padLeft: 0, padTop: 80 });
  });
  it("puts the odd padding pixel at the bottom/right, as round(d - 0.1) does", () => {
    // 200×101 → scale 3.2, 640×323.2 → 323 rows, 317 spare: 158 on top, 159 below.
    const g = letterboxGeometry(200, 101, 640, 640);
    expect(g).toMatchObject({ newWidth: 640, newHeight: 323, padTop: 158 });
    const tall = letterboxGeometry(101, 200, 640, 640);
    expect(tall).toMatchObject({ newWidth: 323, newHeight: 640, padLeft: 158, padTop: 0 });
  });
  it("maps boxes back to original pixels and clips them", () => {
    const g = letterboxGeometry(1024, 512, 640, 640);
    expect(unletterboxBox([64, 160 + 32, 128, 160 + 64], g)).toEqual([102.4, 51.2, 204.8, 102.4]);
    expect(unletterboxBox([-10, 100, 700, 600], g)).toEqual([0, 0, 1024, 512]);
  });
});

describe("letterboxImage (sharp decode)", () => {
  // A 640×320 grey gradient: no resize needed at 640, so pixels must pass through unchanged.
  const w = 640;
  const h = 320;
  const grey = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) grey[y * w + x] = (x + y) % 256;
  const greyPng = (): Promise<Buffer> =>
    sharp(grey, { raw: { width: w, height: h, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer();

  it("copies a grey PNG into the centre as one grey channel and pads with 114", async () => {
    const { pixels, channels, geometry } = await letterboxImage(await greyPng(), 640, 640);
    expect(geometry).toMatchObject({ srcWidth: 640, srcHeight: 320, padTop: 160, scale: 1 });
    expect(channels).toBe(1);
    expect(pixels.length).toBe(640 * 640);
    expect([...pixels.subarray(0, 2)]).toEqual([114, 114]);
    const at = (x: number, y: number): number => pixels[y * 640 + x]!;
    expect(at(5, 160 + 7)).toBe(12);
    expect(at(300, 160 + 100)).toBe(144);
    expect(at(639, 639)).toBe(114);
  });

  it("gives a grey image the same tensor as the same image stored as RGB", async () => {
    // noise at 1000×600: resized and padded, so the grey and RGB paths must agree through both
    const sw = 1000;
    const sh = 600;
    const noise = Uint8Array.from({ length: sw * sh }, (_, k) => (k * 7919 + ((k / sw) | 0) * 104729) % 251);
    const asGrey = await sharp(noise, { raw: { width: sw, height: sh, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer();
    const asRgb = await sharp(noise, { raw: { width: sw, height: sh, channels: 1 } })
      .toColourspace("srgb")
      .png()
      .toBuffer();
    const grey = await letterboxImage(asGrey, 640, 640);
    const rgb = await letterboxImage(asRgb, 640, 640);
    expect([grey.channels, rgb.channels]).toEqual([1, 3]);
    expect(toChw(grey.pixels, grey.channels, 640, 640)).toEqual(toChw(rgb.pixels, rgb.channels, 640, 640));
  });

  it("gives a 16-bit grey image the same tensor as the same image stored as 16-bit RGB", async () => {
    // every 16-bit level once (256×256), letterboxed to 200×200: resized and padded
    const ramp = Uint16Array.from({ length: 65536 }, (_, k) => k);
    const grey = await letterboxImage(png16(256, 256, 1, ramp), 200, 200);
    const rgb = await letterboxImage(png16(256, 256, 3, ramp), 200, 200);
    expect([grey.channels, rgb.channels]).toEqual([1, 3]);
    expect(toChw(grey.pixels, grey.channels, 200, 200)).toEqual(toChw(rgb.pixels, rgb.channels, 200, 200));
    // unresized, each level maps as the RGB path maps it
    const flat = await letterboxImage(png16(256, 256, 1, ramp), 256, 256);
    const flatRgb = await letterboxImage(png16(256, 256, 3, ramp), 256, 256);
    expect(toChw(flat.pixels, 1, 256, 256)).toEqual(toChw(flatRgb.pixels, 3, 256, 256));
  });

  it("flattens grey with alpha over the pad value and reads 16-bit grey as 8-bit", async () => {
    const greyAlpha = await sharp(Buffer.from([200, 0, 200, 255]), { raw: { width: 2, height: 1, channels: 2 } })
      .toColourspace("b-w")
      .png()
      .toBuffer();
    const flat = await letterboxImage(greyAlpha, 2, 1);
    expect(flat.channels).toBe(1);
    expect([...flat.pixels]).toEqual([114, 200]);
    const grey16 = await sharp(Buffer.from([0, 255, 128]), { raw: { width: 3, height: 1, channels: 1 } })
      .toColourspace("grey16")
      .png()
      .toBuffer();
    const eight = await letterboxImage(grey16, 3, 1);
    expect(eight.channels).toBe(1);
    expect([...eight.pixels]).toEqual([0, 255, 128]);
  });

  it("applies EXIF orientation before letterboxing", async () => {
    // Orientation 6: stored 640×320, displayed rotated 90° clockwise as 320×640.
    const jpeg = await sharp(grey, { raw: { width: w, height: h, channels: 1 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const { pixels, channels, geometry } = await letterboxImage(jpeg, 640, 640);
    expect(geometry).toMatchObject({ srcWidth: 320, srcHeight: 640, padLeft: 160, padTop: 0 });
    // Displayed (x', y') = stored (x = y', y = h - 1 - x'): top-right displayed pixel is stored (0, 0) = 0.
    const at = (x: number, y: number): number => pixels[(y * 640 + x) * channels]!;
    expect(Math.abs(at(160 + 319, 0) - 0)).toBeLessThanOrEqual(3);
    expect(Math.abs(at(160 + 0, 100) - ((100 + 319) % 256))).toBeLessThanOrEqual(3);
  });

  it("keeps colour channels in RGB order", async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 20, b: 90 } } })
      .png()
      .toBuffer();
    const { pixels, channels } = await letterboxImage(png, 8, 8);
    expect(channels).toBe(3);
    expect([...pixels.subarray(0, 3)]).toEqual([200, 20, 90]);
  });

  it("rejects bytes that are not a PNG or JPEG", async () => {
    await expect(letterboxImage(Buffer.from("not an image at all"), 64, 64)).rejects.toBeInstanceOf(ImageDecodeError);
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#000" } })
      .gif()
      .toBuffer();
    await expect(letterboxImage(gif, 64, 64)).rejects.toThrow(/unsupported image format gif/);
  });

  it("gives one readable line as the reason a corrupt image cannot be decoded", async () => {
    const base = sharp({ create: { width: 32, height: 32, channels: 3, background: "#808080" } });
    const jpeg = await base.clone().jpeg().toBuffer();
    const png = await base.clone().png().toBuffer();
    const badCrc = Buffer.from(png);
    badCrc[29]! ^= 0xff; // the IHDR chunk's CRC
    const reason = (bytes: Buffer) =>
      letterboxImage(bytes, 64, 64).then(
        () => "decoded",
        (e: Error) => e.message,
      );

    // libvips repeats its lines ("premature end ... / datastream contains no image" several times)
    const truncated = await reason(jpeg.subarray(0, 20));
    expect(truncated).toMatch(/^cannot read image: \S/);
    expect(truncated).not.toMatch(/[\r\n]/);
    expect(truncated).toContain("premature end of JPEG image");
    expect(truncated.split("premature end of JPEG image")).toHaveLength(2);
    expect(truncated.length).toBeLessThanOrEqual(240);
    // sharp's "Unknown error" says nothing: a corrupt PNG gets a reason that does
    expect(await reason(badCrc)).toBe("cannot decode image: corrupt or truncated image data");
    expect(await reason(Buffer.concat([png.subarray(0, 8), Buffer.alloc(64, 7)]))).toBe(
      "cannot read image: Input buffer has corrupt header",
    );
  });

  it("writes planar CHW floats in 0..1, repeating a grey channel in all three planes", () => {
    const rgb = Uint8Array.of(255, 0, 51, 0, 102, 255);
    expect([...toChw(rgb, 3, 2, 1)]).toEqual([1, 0, 0, 0.4, 0.2, 1].map((v) => Math.fround(v)));
    const grey = Uint8Array.of(255, 51);
    const out = new Float32Array(8).fill(-1);
    expect([...toChw(grey, 1, 2, 1, out, 1)]).toEqual([-1, 1, 0.2, 1, 0.2, 1, 0.2, -1].map((v) => Math.fround(v)));
  });
});

/** A 16-bit PNG, grey (1) or RGB (3) with every channel `levels[k]`, written by hand: sharp makes no 16-bit ramp. */
function png16(width: number, height: number, channels: 1 | 3, levels: Uint16Array): Buffer {
  const rows = Buffer.alloc(height * (1 + width * channels * 2));
  for (let y = 0, o = 0; y < height; y++) {
    rows[o++] = 0; // filter: none
    for (let x = 0; x < width; x++)
      for (let c = 0; c < channels; c++, o += 2) rows.writeUInt16BE(levels[y * width + x]!, o);
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([16, channels === 1 ? 0 : 2, 0, 0, 0], 8); // bit depth, colour type, compression, filter, interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Builds a [N, 4 + C, A] tensor from per-anchor rows [cx, cy, w, h, ...scores]. */
function tensor(images: number[][][]): { data: Float32Array; dims: number[] } {
  const n = images.length;
  const a = images[0]!.length;
  const rows = images[0]![0]!.length;
  const data = new Float32Array(n * rows * a);
  images.forEach((anchors, b) =>
    anchors.forEach((row, i) => row.forEach((v, r) => (data[b * rows * a + r * a + i] = v))),
  );
  return { data, dims: [n, rows, a] };
}

describe("output decoding and NMS", () => {
  it("computes IoU", () => {
    expect(iou([0, 0, 10, 10], [5, 0, 15, 10])).toBeCloseTo(50 / 150, 6);
    expect(iou([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
  });

  it("keeps the best class per anchor above the threshold, as x1y1x2y2", () => {
    const { data, dims } = tensor([
      [
        [50, 60, 20, 10, 0.1, 0.9, 0.2],
        [200, 200, 8, 8, 0.2, 0.1, 0.24],
        [300, 100, 4, 6, 0.1, 0.1, 0.6],
      ],
    ]);
    const [dets] = decodeOutput(data, dims, { confThreshold: 0.25, iouThreshold: 0.5 });
    expect(dets).toHaveLength(2);
    expect(dets![0]).toMatchObject({ classId: 1, box: [40, 55, 60, 65] });
    expect(dets![0]!.score).toBeCloseTo(0.9, 6);
    expect(dets![1]).toMatchObject({ classId: 2, box: [298, 97, 302, 103] });
  });

  it("suppresses same-class overlaps above the IoU threshold but not other classes or lighter overlaps", () => {
    const { data, dims } = tensor([
      [
        [50, 50, 20, 20, 0.8, 0, 0], // kept
        [52, 50, 20, 20, 0.7, 0, 0], // IoU 18/22 with the first: suppressed
        [52, 50, 20, 20, 0, 0, 0.5], // same place, other class: kept
        [62, 50, 20, 20, 0.6, 0, 0], // IoU 8/32 = 0.25 with the first: kept
      ],
      [[10, 10, 4, 4, 0, 0.3, 0]],
    ]);
    const out = decodeOutput(data, dims, { confThreshold: 0.25, iouThreshold: 0.5 });
    expect(out[0]!.map((d) => [d.classId, Math.round(d.score * 10)])).toEqual([
      [0, 8],
      [0, 6],
      [2, 5],
    ]);
    expect(out[1]!.map((d) => d.classId)).toEqual([1]);
  });

  it("class-agnostic NMS lets a better box of another class suppress an overlap", () => {
    const { data, dims } = tensor([
      [
        [50, 50, 20, 20, 0.8, 0, 0],
        [52, 50, 20, 20, 0, 0.7, 0],
      ],
    ]);
    const perClass = decodeOutput(data, dims, { confThreshold: 0.25, iouThreshold: 0.5 });
    expect(perClass[0]!.map((d) => d.classId)).toEqual([0, 1]);
    const agnostic = decodeOutput(data, dims, { confThreshold: 0.25, iouThreshold: 0.5, agnostic: true });
    expect(agnostic[0]!.map((d) => d.classId)).toEqual([0]);
  });

  it("nms returns indices best first and honours maxDetections", () => {
    const boxes = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 10, 20, 20, 30, 30, 40, 40, 50, 50);
    const kept = nms(boxes, Float32Array.of(0.5, 0.9, 0.7, 0.3), Int32Array.of(0, 0, 0, 0), 0.5);
    expect([...kept]).toEqual([1, 2, 3]);
    expect([...nms(boxes, Float32Array.of(0.5, 0.9, 0.7, 0.3), Int32Array.of(0, 0, 0, 0), 0.5, 2)]).toEqual([1, 2]);
  });

  it("rejects outputs that are not [N, 4 + C, A]", () => {
    expect(() => decodeOutput(new Float32Array(8), [2, 4], { confThreshold: 0.1, iouThreshold: 0.5 })).toThrow();
    expect(() => decodeOutput(new Float32Array(8), [1, 4, 2], { confThreshold: 0.1, iouThreshold: 0.5 })).toThrow(
      /no class scores/,
    );
  });
});

describe("model metadata", () => {
  it("parses Ultralytics' names dict, JSON objects and arrays", () => {
    expect(parseNames("{0: 'porosity', 1: 'crack', 2: 'inclusion'}")).toEqual(["porosity", "crack", "inclusion"]);
    expect(parseNames('{"1": "b", "0": "a"}')).toEqual(["a", "b"]);
    expect(parseNames("{0: \"it's\", 1: 'x y'}")).toEqual(["it's", "x y"]);
    expect(parseNames('["a","b"]')).toEqual(["a", "b"]);
    expect(() => parseNames("{0: 'a', 2: 'c'}")).toThrow(/class ids/);
    expect(() => parseNames("porosity")).toThrow();
  });
  it("parses imgsz as [h, w]", () => {
    expect(parseImgsz("[640, 512]")).toEqual([640, 512]);
    expect(parseImgsz("640")).toEqual([640, 640]);
    expect(() => parseImgsz("none")).toThrow();
  });
});
