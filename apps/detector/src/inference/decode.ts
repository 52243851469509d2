/**
 * Post-processing of a YOLOv8-layout output [N, 4 + C, A] (CONTRACTS.md §4): per anchor the best class above the
 * confidence threshold, then greedy per-class NMS, all on typed arrays.
 */

export type Box = [x1: number, y1: number, x2: number, y2: number];

export interface RawDetection {
  classId: number;
  score: number;
  /** In network-input pixels. */
  box: Box;
}

export interface DecodeOptions {
  /** Minimum class score kept. */
  confThreshold: number;
  /** Boxes of the same class overlapping a better one by more than this IoU are dropped. */
  iouThreshold: number;
  /** @default 300 (Ultralytics' max_det) */
  maxDetections?: number;
  /**
   * Class-agnostic NMS (Ultralytics' agnostic_nms): overlapping boxes of different classes suppress each other too.
   * Right when objects never overlap, as §5 defects do not.
   * @default false
   */
  agnostic?: boolean;
}

/** IoU of two boxes held in `b` at offsets i*4 and j*4 (x1, y1, x2, y2). */
function iouAt(b: Float32Array, i: number, j: number): number {
  const ax1 = b[i * 4]!;
  const ay1 = b[i * 4 + 1]!;
  const ax2 = b[i * 4 + 2]!;
  const ay2 = b[i * 4 + 3]!;
  const bx1 = b[j * 4]!;
  const by1 = b[j * 4 + 1]!;
  const bx2 = b[j * 4 + 2]!;
  const by2 = b[j * 4 + 3]!;
  const iw = Math.min(ax2, bx2) - Math.max(ax1, bx1);
  const ih = Math.min(ay2, by2) - Math.max(ay1, by1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
  return union > 0 ? inter / union : 0;
}

export function iou(a: Box, b: Box): number {
  return iouAt(Float32Array.of(...a, ...b), 0, 1);
}

/**
 * Greedy NMS per class (or across classes when `agnostic`). `boxes` holds K boxes as x1, y1, x2, y2; returns the
 * kept indices, best score first.
 */
export function nms(
  boxes: Float32Array,
  scores: Float32Array,
  classes: Int32Array,
  iouThreshold: number,
  maxDetections = 300,
  agnostic = false,
): Int32Array {
  const k = scores.length;
  if (boxes.length < k * 4 || classes.length < k) throw new RangeError("nms: boxes/classes shorter than scores");
  const order = new Int32Array(k);
  for (let i = 0; i < k; i++) order[i] = i;
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  const suppressed = new Uint8Array(k);
  const kept: number[] = [];
  for (let oi = 0; oi < k && kept.length < maxDetections; oi++) {
    const i = order[oi]!;
    if (suppressed[i]) continue;
    kept.push(i);
    for (let oj = oi + 1; oj < k; oj++) {
      const j = order[oj]!;
      if (!suppressed[j] && (agnostic || classes[j] === classes[i]) && iouAt(boxes, i, j) > iouThreshold) {
        suppressed[j] = 1;
      }
    }
  }
  return Int32Array.from(kept);
}

/**
 * Decodes a [N, 4 + C, A] output into per-image detections in network-input pixels.
 * @param data the output tensor's data, row-major
 * @param dims its shape: [N, 4 + C, A]
 */
export function decodeOutput(data: Float32Array, dims: readonly number[], opts: DecodeOptions): RawDetection[][] {
  if (dims.length !== 3) throw new RangeError(`expected output dims [N, 4 + C, A], got [${dims.join(", ")}]`);
  const [n, rows, a] = dims as [number, number, number];
  const nc = rows - 4;
  if (nc < 1) throw new RangeError(`output has ${rows} rows: no class scores`);
  if (data.length < n * rows * a) throw new RangeError("output data shorter than its dims");
  const results: RawDetection[][] = [];
  for (let b = 0; b < n; b++) {
    const base = b * rows * a;
    const cand: number[] = [];
    const candClass: number[] = [];
    const candScore: number[] = [];
    for (let i = 0; i < a; i++) {
      let best = -1;
      let bestScore = opts.confThreshold;
      for (let c = 0; c < nc; c++) {
        const s = data[base + (4 + c) * a + i]!;
        if (s >= bestScore && (best < 0 || s > bestScore)) {
          best = c;
          bestScore = s;
        }
      }
      if (best >= 0) {
        cand.push(i);
        candClass.push(best);
        candScore.push(bestScore);
      }
    }
    const k = cand.length;
    const boxes = new Float32Array(k * 4);
    for (let j = 0; j < k; j++) {
      const i = cand[j]!;
      const cx = data[base + i]!;
      const cy = data[base + a + i]!;
      const w = data[base + 2 * a + i]!;
      const h = data[base + 3 * a + i]!;
      boxes[j * 4] = cx - w / 2;
      boxes[j * 4 + 1] = cy - h / 2;
      boxes[j * 4 + 2] = cx + w / 2;
      boxes[j * 4 + 3] = cy + h / 2;
    }
    const scores = Float32Array.from(candScore);
    const classes = Int32Array.from(candClass);
    const kept = nms(boxes, scores, classes, opts.iouThreshold, opts.maxDetections ?? 300, opts.agnostic ?? false);
    results.push(
      Array.from(kept, (j) => ({
        classId: classes[j]!,
        score: scores[j]!,
        box: [boxes[j * 4]!, boxes[j * 4 + 1]!, boxes[j * 4 + 2]!, boxes[j * 4 + 3]!] as Box,
      })),
    );
  }
  return results;
}
