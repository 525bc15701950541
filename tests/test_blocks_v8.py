"""YOLOv8 blocks: fused form equals training form; presets match Ultralytics' published counts."""

from __future__ import annotations

import pytest
import torch

from nasearch.nn.blocks.c2f import C2f
from nasearch.nn.blocks.sppf import SPPF
from nasearch.nn.blocks.v8_head import V8Head
from nasearch.nn.blocks.v8_pan import V8Pan
from nasearch.nn.common import ConvBNAct
from nasearch.nn.inspect import fused_copy, fusion_max_abs_diff, randomize_bn
from nasearch.nn.registry import BuildContext
from nasearch.nn.specs.v8_pan import PanLevel, V8PanParams
from nasearch.space import build_model, load_arch
from tests.published import assert_matches_ultralytics

CTX = BuildContext(nc=5, reg_max=16)


def _check(module, *inputs):
    torch.manual_seed(0)
    randomize_bn(module, seed=1)
    x = inputs if len(inputs) > 1 else inputs[0]
    module.eval()
    diff = fusion_max_abs_diff(_Wrap(module, len(inputs) > 1), x)
    assert diff <= 1e-4, diff
    fused = fused_copy(module)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


class _Wrap(torch.nn.Module):
    def __init__(self, m, many):
        super().__init__()
        self.m, self.many = m, many

    def forward(self, x):
        return self.m(list(x)) if self.many else self.m(x)


def test_conv_bn_act_fuses():
    _check(ConvBNAct(8, 16, 3, 2, CTX), torch.randn(2, 8, 16, 16))


@pytest.mark.parametrize("shortcut", [True, False])
def test_c2f_fuses(shortcut):
    _check(C2f(16, 24, 2, shortcut, CTX), torch.randn(2, 16, 12, 12))


def test_sppf_fuses():
    _check(SPPF(32, 24, 5, CTX), torch.randn(1, 32, 10, 10))


def test_pan_and_head_fuse():
    p = V8PanParams(
        up1=PanLevel(out=24, blocks=1),
        up2=PanLevel(out=16, blocks=2),
        down1=PanLevel(out=24, blocks=1),
        down2=PanLevel(out=32, blocks=1),
    )
    levels = [8, 16, 24, 32]
    feats = [torch.randn(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate(levels)]
    _check(V8Pan(p, CTX, levels), *feats)
    head = V8Head([16, 24, 32], CTX, 32, 16)
    _check(head, *[torch.randn(1, c, s, s) for c, s in zip([16, 24, 32], [16, 8, 4], strict=True)])


PUBLISHED = {  # Ultralytics: parameters (every nn.Parameter), fused GFLOPs at 640
    "yolov8n": (3_157_200, 8.7),
    "yolov8s": (11_166_560, 28.6),
    "yolov8m": (25_902_640, 78.9),
    "yolov8l": (43_691_520, 165.2),
    "yolov8x": (68_229_648, 257.8),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_yolov8_preset_counts(name):
    assert_matches_ultralytics(name, *PUBLISHED[name])


def test_detector_outputs_and_decoding():
    model = build_model(load_arch("yolov8n"), nc=3)
    x = torch.randn(2, 3, 128, 128)
    raw = model(x)
    assert [tuple(b.shape) for b, _ in raw] == [(2, 64, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4)]
    assert [tuple(c.shape) for _, c in raw] == [(2, 3, 16, 16), (2, 3, 8, 8), (2, 3, 4, 4)]
    model.eval()
    with torch.no_grad():
        boxes, scores = model(x)
    n = 16 * 16 + 8 * 8 + 4 * 4
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, 3)
    assert bool((boxes[..., 2:] >= boxes[..., :2]).all())
    assert bool(((scores >= 0) & (scores <= 1)).all())
