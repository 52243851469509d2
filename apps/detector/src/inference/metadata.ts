/**
 * Model description for the §4 interface: class names and input size from the ONNX metadata (`names`, `imgsz`), a
 * sidecar `<model>.json`, or the input shape. onnxruntime-node does not expose custom metadata, so the ONNX
 * ModelProto's metadata_props (field 14) are read with a minimal protobuf scan that skips the graph.
 */
import { readFile } from "node:fs/promises";

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (let p = pos; p < buf.length && p < pos + 10; p++) {
    const byte = buf[p]!;
    value += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return [value, p + 1];
  }
  throw new RangeError("truncated protobuf varint");
}

/** The metadata_props of an ONNX model (ModelProto field 14, StringStringEntryProto {key = 1, value = 2}). */
export function onnxMetadata(model: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const dec = new TextDecoder();
  let pos = 0;
  while (pos < model.length) {
    const [tag, p1] = readVarint(model, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    pos = p1;
    if (wire === 0) pos = readVarint(model, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, p2] = readVarint(model, pos);
      if (p2 + len > model.length) throw new RangeError("truncated protobuf field");
      if (field === 14) {
        let key = "";
        let value = "";
        let q = p2;
        while (q < p2 + len) {
          const [t, q1] = readVarint(model, q);
          if ((t & 7) !== 2) throw new RangeError("unexpected metadata entry wire type");
          const [l, q2] = readVarint(model, q1);
          const s = dec.decode(model.subarray(q2, q2 + l));
          if (t >>> 3 === 1) key = s;
          else if (t >>> 3 === 2) value = s;
          q = q2 + l;
        }
        out[key] = value;
      }
      pos = p2 + len;
    } else throw new RangeError(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

/**
 * Class names from Ultralytics' `names` metadata (`{0: 'porosity', 1: 'crack'}`, a Python dict repr), a JSON object
 * with numeric keys, or a JSON array.
 */
export function parseNames(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    const arr: unknown = JSON.parse(trimmed);
    if (!Array.isArray(arr) || !arr.every((v) => typeof v === "string")) throw new Error("names: not a string array");
    return arr;
  }
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}"))
    throw new Error(`names: cannot parse ${JSON.stringify(text)}`);
  const entries = new Map<number, string>();
  const re = /\s*["']?(\d+)["']?\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*(?:,|$)/y;
  const body = trimmed.slice(1, -1).trim();
  let pos = 0;
  while (pos < body.length) {
    re.lastIndex = pos;
    const m = re.exec(body);
    if (!m) throw new Error(`names: cannot parse ${JSON.stringify(text)}`);
    const raw = m[2] ?? m[3] ?? "";
    entries.set(Number(m[1]), raw.replace(/\\(.)/g, "$1"));
    pos = re.lastIndex;
  }
  const names: string[] = [];
  for (let i = 0; i < entries.size; i++) {
    const n = entries.get(i);
    if (n === undefined) throw new Error(`names: class ids are not 0..${entries.size - 1}`);
    names.push(n);
  }
  return names;
}

/** `imgsz` metadata: `[640, 640]` (h, w), `640`, or `(640, 640)`. Returns [height, width]. */
export function parseImgsz(text: string): [number, number] {
  const nums = text.match(/\d+/g)?.map(Number) ?? [];
  const h = nums[0];
  const w = nums[1] ?? h;
  if (h === undefined || w === undefined || nums.length > 2 || h <= 0 || w <= 0) {
    throw new Error(`imgsz: cannot parse ${JSON.stringify(text)}`);
  }
  return [h, w];
}

export interface ModelDescription {
  names: string[];
  /** Network input [height, width]. */
  imgsz: [number, number];
}

interface Sidecar {
  names?: unknown;
  imgsz?: unknown;
}

/**
 * Names and input size of the model at `path`: ONNX metadata first, then `<model>.json` (`{"names": [...] | {...},
 * "imgsz": 640 | [h, w]}`), then the input's static shape for the size.
 */
export async function describeModel(
  path: string,
  modelBytes: Uint8Array,
  inputShape?: readonly (number | string)[],
): Promise<ModelDescription> {
  const meta = onnxMetadata(modelBytes);
  let sidecar: Sidecar = {};
  const sidecarPath = path.replace(/\.onnx$/i, "") + ".json";
  try {
    sidecar = JSON.parse(await readFile(sidecarPath, "utf8")) as Sidecar;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${sidecarPath}: ${String(err)}`);
  }
  let names: string[] | undefined;
  if (meta.names !== undefined) names = parseNames(meta.names);
  else if (sidecar.names !== undefined) names = parseNames(JSON.stringify(sidecar.names));
  if (!names) throw new Error(`${path}: no class names in the ONNX metadata or ${sidecarPath}`);
  let imgsz: [number, number] | undefined;
  if (meta.imgsz !== undefined) imgsz = parseImgsz(meta.imgsz);
  else if (sidecar.imgsz !== undefined) imgsz = parseImgsz(JSON.stringify(sidecar.imgsz));
  else if (inputShape && typeof inputShape[2] === "number" && typeof inputShape[3] === "number") {
    imgsz = [inputShape[2], inputShape[3]];
  }
  if (!imgsz) throw new Error(`${path}: no input size in metadata, sidecar or input shape`);
  return { names, imgsz };
}
