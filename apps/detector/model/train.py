#!/usr/bin/python3
"""Trains the bundled defect detector and exports it to ONNX with the CONTRACTS.md §4 interface.

A small anchor-free, YOLO-style detector: a plain conv backbone (stride 2..32), a top-down FPN and one decoupled head
per level at strides 4, 8, 16 and 32 (stride 4 keeps 3 px-radius pores on 1024 px images, ~4 px after the 640
letterbox, on several anchors). Each anchor predicts (dx, dy, log w, log h) relative to its cell and sigmoid class
scores; the export decodes them in-graph to the Ultralytics layout [N, 4 + C, A] = cx, cy, w, h in input pixels, then
C scores in 0..1.

Training reads the packed, already letterboxed dataset written by model/dataset/pack.ts (so it sees exactly the pixels
the TypeScript inference core produces) and trains on random crops of the 640 px canvas (a fully convolutional net:
a crop costs a quarter of the full image on a 2-core CPU). Objects cut by a crop are ignored, not taught as
background.

Run with Debian's CPU PyTorch: /usr/bin/python3 apps/detector/model/train.py --data DIR --out model.onnx
--smoke trains one short epoch on whatever DIR holds and exports, so CI can prove the script still works.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NAMES = ["porosity", "crack", "inclusion"]
STRIDES = [4, 8, 16, 32]
# Level assignment by the box's longer side (letterboxed px); the ranges overlap so sizes near a boundary are
# taught on both levels and NMS keeps the better box.
LEVEL_RANGES = [(0, 32), (16, 72), (40, 160), (96, 1e9)]


def cbr(cin, cout, stride=1, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class Detector(nn.Module):
    def __init__(self, nc=3, width=48):
        super().__init__()
        self.nc = nc
        self.stem = cbr(3, 16, 2)
        self.c2 = nn.Sequential(cbr(16, 32, 2), cbr(32, 32))
        self.c3 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64))
        self.c4 = nn.Sequential(cbr(64, 96, 2), cbr(96, 96))
        self.c5 = nn.Sequential(cbr(96, 128, 2), cbr(128, 128), cbr(128, 128))
        self.lat = nn.ModuleList([nn.Conv2d(c, width, 1) for c in (32, 64, 96, 128)])
        self.smooth = nn.ModuleList([cbr(width, width) for _ in STRIDES])
        self.reg = nn.ModuleList([nn.Sequential(cbr(width, width), nn.Conv2d(width, 4, 1)) for _ in STRIDES])
        self.cls = nn.ModuleList([nn.Sequential(cbr(width, width), nn.Conv2d(width, nc, 1)) for _ in STRIDES])
        for head in self.cls:
            nn.init.constant_(head[-1].bias, -math.log((1 - 0.01) / 0.01))
        for head in self.reg:
            nn.init.zeros_(head[-1].bias)
            nn.init.normal_(head[-1].weight, std=0.01)

    def features(self, x):
        p2 = self.c2(self.stem(x))
        p3 = self.c3(p2)
        p4 = self.c4(p3)
        p5 = self.c5(p4)
        feats = [lat(p) for lat, p in zip(self.lat, (p2, p3, p4, p5))]
        for i in range(len(feats) - 2, -1, -1):
            feats[i] = feats[i] + F.interpolate(feats[i + 1], size=feats[i].shape[-2:], mode="nearest")
        return [s(f) for s, f in zip(self.smooth, feats)]

    def forward(self, x):
        """Raw per-level outputs: list of (reg [N,4,H,W], cls logits [N,C,H,W])."""
        return [(r(f), c(f)) for f, r, c in zip(self.features(x), self.reg, self.cls)]


def decode_level(reg, stride):
    """(dx, dy, log w, log h) → cx, cy, w, h in input pixels, [N, 4, H*W]."""
    n, _, h, w = reg.shape
    ys = (torch.arange(h, dtype=reg.dtype) + 0.5) * stride
    xs = (torch.arange(w, dtype=reg.dtype) + 0.5) * stride
    ay = ys.view(1, h, 1).expand(1, h, w)
    ax = xs.view(1, 1, w).expand(1, h, w)
    cx = ax + reg[:, 0] * stride
    cy = ay + reg[:, 1] * stride
    bw = torch.exp(reg[:, 2].clamp(max=8.0)) * stride
    bh = torch.exp(reg[:, 3].clamp(max=8.0)) * stride
    return torch.stack([cx, cy, bw, bh], 1).reshape(n, 4, h * w)


class Exported(nn.Module):
    """The §4 interface: images [N,3,H,W] in 0..1 → [N, 4 + C, A]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        outs = []
        for (reg, cls), s in zip(self.model(images), STRIDES):
            n = reg.shape[0]
            outs.append(torch.cat([decode_level(reg, s), torch.sigmoid(cls).reshape(n, cls.shape[1], -1)], 1))
        return torch.cat(outs, 2)


# ---------------------------------------------------------------- data


class Packed:
    def __init__(self, directory, imgsz):
        with open(os.path.join(directory, f"packed-{imgsz}.json")) as f:
            index = json.load(f)
        self.imgsz = index["imgsz"]
        self.count = index["count"]
        self.boxes = [np.array(b, dtype=np.float32).reshape(-1, 5) for b in index["boxes"]]
        self.pixels = np.memmap(
            os.path.join(directory, f"packed-{imgsz}.u8"), dtype=np.uint8, mode="r", shape=(self.count, imgsz, imgsz)
        )

    def crop(self, i, crop, rng):
        """A random crop (centred on a random object half the time) and its boxes: (grey uint8, kept, ignored)."""
        s = self.imgsz
        boxes = self.boxes[i]
        if len(boxes) and rng.random() < 0.5:
            b = boxes[rng.randrange(len(boxes))]
            cx, cy = (b[1] + b[3]) / 2, (b[2] + b[4]) / 2
            x0 = int(np.clip(cx - crop / 2 + rng.uniform(-crop / 3, crop / 3), 0, s - crop))
            y0 = int(np.clip(cy - crop / 2 + rng.uniform(-crop / 3, crop / 3), 0, s - crop))
        else:
            x0, y0 = rng.randint(0, s - crop), rng.randint(0, s - crop)
        img = np.array(self.pixels[i, y0 : y0 + crop, x0 : x0 + crop])
        kept, ignored = [], []
        for c, x1, y1, x2, y2 in boxes:
            bx = np.array([x1 - x0, y1 - y0, x2 - x0, y2 - y0], dtype=np.float32)
            cl = np.clip(bx, 0, crop)
            if cl[2] <= cl[0] or cl[3] <= cl[1]:
                continue
            inside = bx[0] >= 0 and bx[1] >= 0 and bx[2] <= crop and bx[3] <= crop
            (kept if inside else ignored).append([c, *(bx if inside else cl)])
        if rng.random() < 0.5:
            img = img[:, ::-1]
            kept = [[c, crop - x2, y1, crop - x1, y2] for c, x1, y1, x2, y2 in kept]
            ignored = [[c, crop - x2, y1, crop - x1, y2] for c, x1, y1, x2, y2 in ignored]
        if rng.random() < 0.5:
            img = img[::-1, :]
            kept = [[c, x1, crop - y2, x2, crop - y1] for c, x1, y1, x2, y2 in kept]
            ignored = [[c, x1, crop - y2, x2, crop - y1] for c, x1, y1, x2, y2 in ignored]
        return np.ascontiguousarray(img), kept, ignored


def build_targets(kept, ignored, size, nc):
    """Per level: class targets [C, H*W], weights [H*W] (0 = ignored), box targets [4, H*W] (x1y1x2y2), pos mask."""
    levels = []
    for s, (lo, hi) in zip(STRIDES, LEVEL_RANGES):
        h = w = size // s
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * s
        ay, ax = torch.meshgrid(ys, xs, indexing="ij")
        ax, ay = ax.reshape(-1), ay.reshape(-1)
        cls_t = torch.zeros(nc, h * w)
        weight = torch.ones(h * w)
        box_t = torch.zeros(4, h * w)
        best_area = torch.full((h * w,), float("inf"))
        pos = torch.zeros(h * w, dtype=torch.bool)
        for c, x1, y1, x2, y2 in ignored:
            x1, y1, x2, y2 = float(x1), float(y1), float(x2), float(y2)
            weight[(ax >= x1 - s / 2) & (ax <= x2 + s / 2) & (ay >= y1 - s / 2) & (ay <= y2 + s / 2)] = 0
        for c, x1, y1, x2, y2 in kept:
            x1, y1, x2, y2 = float(x1), float(y1), float(x2), float(y2)
            bw, bh = x2 - x1, y2 - y1
            side = max(bw, bh)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if lo <= side < hi:
                m = ((ax - cx).abs() <= s) & ((ay - cy).abs() <= s) & (bw * bh < best_area)
                best_area[m] = bw * bh
                pos |= m
                cls_t[:, m] = 0
                cls_t[int(c), m] = 1
                box_t[:, m] = torch.tensor([float(x1), float(y1), float(x2), float(y2)], dtype=torch.float32).view(4, 1)
            else:
                # Taught on another level: not background here either.
                near = ((ax - cx).abs() <= s) & ((ay - cy).abs() <= s) & ~pos
                weight[near] = 0
        weight[pos] = 1
        levels.append((cls_t, weight, box_t, pos))
    return levels


def giou_loss(p, t):
    """p, t: [K, 4] x1y1x2y2."""
    ix1, iy1 = torch.max(p[:, 0], t[:, 0]), torch.max(p[:, 1], t[:, 1])
    ix2, iy2 = torch.min(p[:, 2], t[:, 2]), torch.min(p[:, 3], t[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    ap = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    at = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    union = ap + at - inter + 1e-7
    iou = inter / union
    ex1, ey1 = torch.min(p[:, 0], t[:, 0]), torch.min(p[:, 1], t[:, 1])
    ex2, ey2 = torch.max(p[:, 2], t[:, 2]), torch.max(p[:, 3], t[:, 3])
    enclose = (ex2 - ex1) * (ey2 - ey1) + 1e-7
    return (1 - iou + (enclose - union) / enclose), iou


def compute_loss(outputs, targets):
    cls_loss, box_loss, npos = 0.0, 0.0, 0
    for li, ((reg, cls), s) in enumerate(zip(outputs, STRIDES)):
        n, nc = cls.shape[0], cls.shape[1]
        logits = cls.reshape(n, nc, -1)
        boxes = decode_level(reg, s)  # [N,4,A] cx cy w h
        xyxy = torch.stack(
            [boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2],
            1,
        )
        cls_t = torch.stack([t[li][0] for t in targets])
        weight = torch.stack([t[li][1] for t in targets]).unsqueeze(1)
        box_t = torch.stack([t[li][2] for t in targets])
        pos = torch.stack([t[li][3] for t in targets])
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, cls_t, reduction="none")
        pt = p * cls_t + (1 - p) * (1 - cls_t)
        alpha = 0.25 * cls_t + 0.75 * (1 - cls_t)
        cls_loss = cls_loss + (alpha * (1 - pt) ** 2 * ce * weight).sum()
        k = int(pos.sum())
        if k:
            pb = xyxy.permute(0, 2, 1)[pos]
            tb = box_t.permute(0, 2, 1)[pos]
            g, _ = giou_loss(pb, tb)
            # Small boxes: GIoU alone is scale-free; an L1 on the edges in stride units sharpens the few-pixel pores.
            l1 = ((pb - tb).abs() / s).sum(1)
            box_loss = box_loss + g.sum() + 0.25 * l1.sum()
            npos += k
    npos = max(npos, 1)
    return cls_loss / npos, box_loss / npos


def make_batch(data, indices, crop, rng, nc):
    imgs, targets = [], []
    for i in indices:
        img, kept, ignored = data.crop(i, crop, rng)
        imgs.append(torch.from_numpy(img.astype(np.float32) / 255.0))
        targets.append(build_targets(kept, ignored, crop, nc))
    x = torch.stack(imgs).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return x, targets


# ---------------------------------------------------------------- export


def export_onnx(model, path, imgsz, opset=17):
    import onnx

    model.eval()
    wrapper = Exported(model)
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    torch.onnx.export(
        wrapper,
        dummy,
        path,
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
    )
    m = onnx.load(path)
    onnx.checker.check_model(m)
    meta = {
        "names": "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(NAMES)) + "}",
        "imgsz": f"[{imgsz}, {imgsz}]",
        "stride": str(max(STRIDES)),
        "task": "detect",
        "batch": "1",
        "description": "ndt-platform synthetic weld defect detector (apps/detector/model/MODEL.md)",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)
    return os.path.getsize(path)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset dir holding packed-<imgsz>.u8/.json (dataset/pack.ts)")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=45.0, help="training time budget (cosine LR over it)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", help="checkpoint (.pt) to start from")
    ap.add_argument("--export-only", action="store_true", help="export --resume to --out without training")
    ap.add_argument("--smoke", action="store_true", help="one short epoch on the given data, then export (CI)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model = Detector(nc=len(NAMES))
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location="cpu"))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"parameters: {nparams}", flush=True)
    if args.export_only:
        print(f"exported {export_onnx(model, args.out, args.imgsz)} bytes → {args.out}")
        return

    data = Packed(args.data, args.imgsz)
    crop = min(args.crop, data.imgsz)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    budget = 60.0 * (0.0 if args.smoke else args.minutes)
    steps_per_epoch = max(1, data.count // args.batch)
    max_steps = steps_per_epoch if args.smoke else 10**9
    ckpt = os.path.splitext(args.out)[0] + ".pt"
    t0 = time.time()
    last_save = t0
    step = 0
    order = []
    running = None
    model.train()
    while step < max_steps:
        elapsed = time.time() - t0
        frac = 1.0 if args.smoke else elapsed / budget
        if frac >= 1.0 and not args.smoke:
            break
        warm = min(1.0, (step + 1) / 100)
        lr = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < args.batch:
            order = list(range(data.count))
            rng.shuffle(order)
        idx, order = order[: args.batch], order[args.batch :]
        x, targets = make_batch(data, idx, crop, rng, len(NAMES))
        lc, lb = compute_loss(model(x), targets)
        loss = lc + 2.0 * lb
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        cur = (float(lc), float(lb))
        running = cur if running is None else tuple(0.98 * r + 0.02 * c for r, c in zip(running, cur))
        if step % 50 == 0 or args.smoke:
            print(
                f"step {step} epoch {step / steps_per_epoch:.2f} t {elapsed / 60:.1f}m lr {lr:.2e} "
                f"cls {running[0]:.4f} box {running[1]:.4f}",
                flush=True,
            )
        if time.time() - last_save > 300:
            torch.save(model.state_dict(), ckpt)
            last_save = time.time()
    torch.save(model.state_dict(), ckpt)
    size = export_onnx(model, args.out, args.imgsz)
    print(f"trained {step} steps in {(time.time() - t0) / 60:.1f} min; exported {size} bytes → {args.out}", flush=True)


if __name__ == "__main__":
    main()
