"""Models and calibration data for the static-quantization bench (bench/static.ts).

Writes into bench/.cache/static/ (gitignored; big models are not committed):
  resnet18.onnx            torchvision resnet18, opset 17
  mobilenet_v3_small.onnx  torchvision mobilenet_v3_small, opset 13 (hard-swish as HardSigmoid + Mul)
  bert_encoder.onnx        a BERT-style encoder (4 post-LN layers, d 256, 4 heads, FF 1024, seq 128), opset 17
  detection.onnx           a conv backbone with a YOLO-style head whose raw tensor mixes
                           pixel-scale boxes and logits (it collapses when fully quantized), opset 13
  images224.npz / images128.npz / hidden.npz   96 samples each: 32 to calibrate, 64 held back

No network here, so no pretrained weights (torchvision's random init, fixed seed) and no
dataset: the images are the PNG/JPEG files found under /usr/share (icons, documentation
figures), resized, with random crops and flips of them when there are fewer than 96. The
encoder's inputs are N(0, 1) hidden states (no text corpus or embedding model offline).
Run: python3 bench/models/generate_static.py
"""
import glob
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '.cache', 'static')
N = 96
sys.path.insert(0, os.path.join(HERE, '..', '..', 'test', 'fixtures', 'models', 'static'))
from generate import EncoderLayer  # noqa: E402  (the fixtures' BERT block, at bench size)


class Encoder(nn.Module):
    def __init__(self, d=256, heads=4, ff=1024, layers=4):
        super().__init__()
        self.layers = nn.Sequential(*(EncoderLayer(d, heads, ff) for _ in range(layers)))
        self.pooler = nn.Linear(d, d)

    def forward(self, x):
        h = self.layers(x)
        return h, torch.tanh(self.pooler(h[:, 0]))


class Detector(nn.Module):
    """Backbone at 32-128 channels, head: 4 box regressions in pixels of a 4096-px image and
    2 objectness logits from RetinaNet's prior bias (-4.6), as one raw tensor."""

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for w, s in [(32, 2), (64, 2), (64, 1), (128, 2), (128, 1)]:
            layers += [nn.Conv2d(c, w, 3, s, 1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 6, 1)
        with torch.no_grad():
            self.head.bias[4:6] = -4.6
            self.head.weight[4:6] *= 4
        self.register_buffer('pixels', torch.tensor([4096.0] * 4 + [1.0, 1.0]).reshape(1, 6, 1, 1))

    def forward(self, x):
        raw = self.head(self.backbone(x)) * self.pixels
        return raw[:, 0:4], torch.sigmoid(raw[:, 4:6])


def images(size, rng):
    files = sorted(f for f in glob.glob('/usr/share/**/*', recursive=True) if f.lower().endswith(('.png', '.jpg', '.jpeg')) and os.path.getsize(f) > 2048)
    pics = []
    for f in files:
        try:
            pics.append(Image.open(f).convert('RGB'))
        except Exception:
            pass
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for i in range(N):
        im = pics[i % len(pics)]
        if i >= len(pics):  # a random crop and flip of an image already used
            w, h = im.size
            cw, ch = int(w * rng.uniform(0.5, 0.9)), int(h * rng.uniform(0.5, 0.9))
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            im = im.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
        a = (np.asarray(im.resize((size, size), Image.BILINEAR), np.float32) / 255 - mean) / std
        out.append(a.transpose(2, 0, 1)[None])
    print(f'{len(pics)} images found under /usr/share, {N} samples at {size}x{size}')
    return np.stack(out).astype(np.float32)


def export(model, args, name, opset, inputs, outputs):
    model.eval()
    path = os.path.join(OUT, name)
    torch.onnx.export(model, args, path, opset_version=opset, input_names=inputs, output_names=outputs, do_constant_folding=True)
    print(name, os.path.getsize(path), 'bytes')


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    export(torchvision.models.resnet18(), torch.randn(1, 3, 224, 224), 'resnet18.onnx', 17, ['input'], ['logits'])
    export(torchvision.models.mobilenet_v3_small(), torch.randn(1, 3, 224, 224), 'mobilenet_v3_small.onnx', 13, ['input'], ['logits'])
    export(Encoder(), torch.randn(1, 128, 256), 'bert_encoder.onnx', 17, ['hidden'], ['sequence', 'pooled'])
    det = Detector()
    for m in det.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    export(det, torch.randn(1, 3, 128, 128), 'detection.onnx', 13, ['image'], ['boxes', 'scores'])
    np.savez(os.path.join(OUT, 'images224.npz'), input=images(224, rng))
    np.savez(os.path.join(OUT, 'images128.npz'), image=images(128, rng))
    np.savez(os.path.join(OUT, 'hidden.npz'), hidden=rng.standard_normal((N, 1, 128, 256)).astype(np.float32))


if __name__ == '__main__':
    main()
