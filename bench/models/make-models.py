#!/usr/bin/python3
"""Bench models for issue 9 (static int8), written into bench/models/.cache/ (gitignored).

    /usr/bin/python3 bench/models/make-models.py            # ~1-2 min; skips files that exist
    /usr/bin/python3 bench/models/make-models.py --force    # rewrite everything

Debian's python3-torch 1.13 / torchvision 0.14 / onnx 1.12 / PIL, for making the files only.
No pretrained weights can be downloaded here: resnet18 and mobilenet_v3_small carry PyTorch's
random initialisation (with randomised BatchNorm statistics), so their "top-1" is agreement with
the float model, never accuracy. See README.md beside this file for what each file is.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
SAMPLES = 96
FORCE = "--force" in sys.argv

made: list[dict] = []


def seed(n: int) -> None:
    torch.manual_seed(n)
    np.random.seed(n)


def randomize_bn(module: nn.Module, s: int) -> None:
    g = torch.Generator().manual_seed(s)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)


def export(name: str, module: nn.Module, args: tuple, opset: int, input_names, output_names, dynamic_axes, about: str) -> None:
    path = os.path.join(CACHE, f"{name}.onnx")
    entry = {"file": f"{name}.onnx", "opset": opset, "about": about, "inputs": input_names, "outputs": output_names}
    if FORCE or not os.path.exists(path):
        module.eval()
        buf = io.BytesIO()
        torch.onnx.export(module, args, buf, opset_version=opset, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
        m = onnx.load_from_string(buf.getvalue())
        onnx.checker.check_model(m)
        with open(path, "wb") as f:
            f.write(buf.getvalue())
    entry["bytes"] = os.path.getsize(path)
    made.append(entry)
    print(f"{name:28s} {entry['bytes'] / 1e6:7.2f} MB  opset {opset}", flush=True)


# ---------------------------------------------------------------- images

PREPROCESS = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def machine_images() -> list[str]:
    """Distinct pictures that ship with Debian packages (icons, documentation figures), largest copy of each."""
    best: dict[str, tuple[int, str]] = {}
    for root in ["/usr/share", "/usr/lib/python3/dist-packages"]:
        for dirpath, _, files in os.walk(root):
            for f in files:
                if not f.lower().endswith((".png", ".jpg", ".jpeg")):
                    continue
                p = os.path.join(dirpath, f)
                try:
                    size = os.path.getsize(p)
                except OSError:
                    continue
                if size < 2048:
                    continue
                key = os.path.splitext(f)[0].lower()
                if key not in best or size > best[key][0]:
                    best[key] = (size, p)
    return sorted(p for _, p in best.values())


def load_rgb(path: str) -> Image.Image | None:
    try:
        im = Image.open(path)
        im.load()
    except Exception:  # noqa: BLE001 - a file PIL cannot read is not a sample
        return None
    if min(im.size) < 32:
        return None
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def image_sets() -> None:
    cal_path = os.path.join(CACHE, "images-calibration.npz")
    eval_path = os.path.join(CACHE, "images-eval.npz")
    if not FORCE and os.path.exists(cal_path) and os.path.exists(eval_path):
        made.append({"file": "images-calibration.npz"})
        made.append({"file": "images-eval.npz"})
        return
    tensors, used = [], []
    for p in machine_images():
        im = load_rgb(p)
        if im is None:
            continue
        tensors.append(PREPROCESS(im).numpy())
        used.append(p)
        if len(tensors) == 2 * SAMPLES:
            break
    if len(tensors) < 2 * SAMPLES:
        raise SystemExit(f"only {len(tensors)} usable images found under /usr/share")
    # interleave so both sets draw from every icon theme and size class
    arr = np.stack(tensors).astype(np.float32)[:, None]  # [2N, 1, 3, 224, 224]: each sample one batch
    np.savez(cal_path, image=arr[0::2])
    np.savez(eval_path, image=arr[1::2])
    with open(os.path.join(CACHE, "images.txt"), "w") as f:
        for i, p in enumerate(used):
            f.write(f"{'calibration' if i % 2 == 0 else 'eval'}\t{p}\n")
    made.append({"file": "images-calibration.npz", "array": "image", "shape": list(arr[0::2].shape)})
    made.append({"file": "images-eval.npz", "array": "image", "shape": list(arr[1::2].shape)})
    print(f"images: {len(used)} files -> 2 x {SAMPLES} samples", flush=True)


# ---------------------------------------------------------------- BERT-style encoder

class BertLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d, eps=1e-12)
        self.ff1 = nn.Linear(d, ff)
        self.act = nn.GELU()
        self.ff2 = nn.Linear(ff, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        b, s, d = x.shape
        hd = d // self.heads

        def split(t):
            return t.reshape(b, s, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd), dim=-1)
        ctx = torch.matmul(att, v).transpose(1, 2).reshape(b, s, d)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff2(self.act(self.ff1(x))))


class BertEncoder(nn.Module):
    """BERT-base's structure at d=256, 4 layers, 4 heads, FF 1024, vocab 8192 (post-LN, exact GELU)."""

    def __init__(self, vocab: int = 8192, d: int = 256, layers: int = 4, heads: int = 4, ff: int = 1024, max_len: int = 512):
        super().__init__()
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList([BertLayer(d, heads, ff) for _ in range(layers)])
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)  # BERT's initializer_range

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.ln(self.word(input_ids) + self.pos(pos))
        for layer in self.layers:
            x = layer(x)
        return x


# ---------------------------------------------------------------- detector whose full int8 collapses

class Detector(nn.Module):
    """A small single-scale detector, YOLO-export style: box regression decoded to pixels (hundreds)
    and sigmoid class scores ([0, 1]) are concatenated into one tensor, then sliced apart again.
    Quantizing that Concat (and the Slices that share its scale) with one 8-bit scale wipes out the
    scores: a scale of ~2 px per step rounds every score to the zero point."""

    def __init__(self, classes: int = 20, stride: int = 16, size: int = 224):
        super().__init__()

        def block(cin, cout, s):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.backbone = nn.Sequential(block(3, 32, 2), block(32, 64, 2), block(64, 64, 1), block(64, 128, 2), block(128, 128, 1), block(128, 128, 2))
        self.box_head = nn.Sequential(block(128, 64, 1), nn.Conv2d(64, 4, 1))
        self.cls_head = nn.Sequential(block(128, 64, 1), nn.Conv2d(64, classes, 1))
        cells = size // stride
        gy, gx = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        grid = torch.stack([gx, gy, torch.zeros_like(gx), torch.zeros_like(gy)]).float()  # [4, cells, cells]
        self.register_buffer("grid", grid.unsqueeze(0) * stride)
        self.register_buffer("box_scale", torch.tensor([stride, stride, size, size], dtype=torch.float32).view(1, 4, 1, 1))
        self.classes = classes
        with torch.no_grad():
            # a trained detector is confident: class logits spread over several units, not PyTorch's
            # initial ±0.1, so the scores use the whole [0, 1] range and losing them shows in any metric
            self.cls_head[1].weight.mul_(40.0)
            self.box_head[1].weight.mul_(16.0)

    def forward(self, image):
        f = self.backbone(image)
        boxes = self.box_head(f) * self.box_scale + self.grid        # pixels: tens to hundreds
        scores = torch.sigmoid(self.cls_head(f))                      # [0, 1]
        det = torch.cat([boxes, scores], dim=1)                       # [b, 4 + classes, cells, cells]
        det = det.flatten(2).transpose(1, 2)                          # [b, cells², 4 + classes]
        return det[..., :4], det[..., 4:]


def main() -> int:
    os.makedirs(CACHE, exist_ok=True)
    image = (torch.randn(1, 3, 224, 224),)
    dyn = {"image": {0: "batch"}, "logits": {0: "batch"}}
    for opset in [13, 17]:
        seed(1)
        m = torchvision.models.resnet18()
        randomize_bn(m, 2)
        export(f"resnet18-op{opset}", m, image, opset, ["image"], ["logits"], dyn,
               "torchvision.models.resnet18(), random init (no weights can be downloaded here), randomised BatchNorm statistics")
        seed(3)
        m = torchvision.models.mobilenet_v3_small()
        randomize_bn(m, 4)
        export(f"mobilenet_v3_small-op{opset}", m, image, opset, ["image"], ["logits"], dyn,
               "torchvision.models.mobilenet_v3_small(), random init, randomised BatchNorm statistics")
        seed(5)
        ids = (torch.randint(0, 8192, (1, 128)),)
        export(f"bert-encoder-op{opset}", BertEncoder(), ids, opset, ["input_ids"], ["last_hidden_state"],
               {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}},
               "BERT-style encoder from torch.nn (d=256, 4 layers, 4 heads, FF 1024, vocab 8192, seq 128): MatMul attention, "
               + ("LayerNormalization" if opset >= 17 else "LayerNorm decomposed into ReduceMean/Sub/Pow/Sqrt/Div") + ", GELU as Erf")
        seed(7)
        m = Detector()
        randomize_bn(m, 8)
        export(f"detector-op{opset}", m, image, opset, ["image"], ["boxes", "scores"],
               {"image": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
               "Conv detector (stride 16, 14x14 cells, 20 classes): pixel-decoded boxes and sigmoid scores concatenated then sliced apart")
    image_sets()
    tok_cal = os.path.join(CACHE, "tokens-calibration.npz")
    tok_eval = os.path.join(CACHE, "tokens-eval.npz")
    if FORCE or not os.path.exists(tok_cal):
        rng = np.random.default_rng(9)
        np.savez(tok_cal, input_ids=rng.integers(0, 8192, (SAMPLES, 1, 128), dtype=np.int64))
        np.savez(tok_eval, input_ids=rng.integers(0, 8192, (SAMPLES, 1, 128), dtype=np.int64))
    made.append({"file": "tokens-calibration.npz", "array": "input_ids", "shape": [SAMPLES, 1, 128]})
    made.append({"file": "tokens-eval.npz", "array": "input_ids", "shape": [SAMPLES, 1, 128]})
    with open(os.path.join(CACHE, "models.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "files": made}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
