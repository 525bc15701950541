"""YOLO-NAS blocks: fused form equals training form per block; presets match super-gradients' counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasearch.errors import InputError
from nasearch.nn.blocks.repvgg import QARepVGGBlock, RepVGGBlock
from nasearch.nn.blocks.yolonas import (
    SPP,
    YoloNASBottleneck,
    YoloNASCSP,
    YoloNASDownStage,
    YoloNASHead,
    YoloNASPan,
    YoloNASUpStage,
    head_widths,
)
from nasearch.nn.common import ConvBNAct
from nasearch.nn.inspect import count_params, fused_copy
from nasearch.nn.registry import BuildContext, load_blocks
from nasearch.nn.specs.yolonas import DownLevel, UpLevel, YoloNASPanParams
from nasearch.space import Architecture, build_model, load_arch
from tests.fusion import assert_fuses, randomize

CTX = BuildContext(act="relu", nc=5, reg_max=16)
KINDS = ["qarepvgg", "repvgg", "conv"]
INNER = {"qarepvgg": QARepVGGBlock, "repvgg": RepVGGBlock, "conv": ConvBNAct}


@pytest.mark.parametrize("kind", KINDS)
def test_bottleneck_fuses_and_uses_its_alpha(kind):
    block = YoloNASBottleneck(16, 16, kind, CTX, None)
    assert isinstance(block.cv1, INNER[kind]) and isinstance(block.cv2, INNER[kind])
    assert block.alpha is not None and block.alpha.numel() == 1
    assert_fuses(block, torch.randn(2, 16, 10, 10))
    block.eval()
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        before = block(x)
        block.alpha.add_(0.5)
        assert torch.allclose(block(x) - before, 0.5 * x, atol=1e-5)  # residual = alpha · x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("concat", [False, True])
def test_csp_layer_fuses(kind, concat):
    csp = YoloNASCSP(24, 32, 3, 8, kind, CTX, None, concat_intermediates=concat)
    assert csp.conv3.conv.in_channels == 8 * (2 + (3 if concat else 0))
    fused = assert_fuses(csp, torch.randn(2, 24, 9, 9))
    assert fused(torch.randn(1, 24, 9, 9)).shape == (1, 32, 9, 9)


@pytest.mark.parametrize("kind", KINDS)
def test_stage_fuses_and_downsamples(kind):
    entry = load_blocks()["yolonas_stage"]
    assert entry.kind == "stage"
    params = entry.params(out=32, blocks=2, hidden=16, concat_intermediates=True, block=kind)
    stage, c_out = entry.build(params, CTX, 16)
    assert c_out == 32
    down = stage[0]
    assert isinstance(down, INNER[kind])
    if kind != "conv":  # the downsample block has no identity branch
        assert not down.has_identity
    assert isinstance(stage[1].bottlenecks[0].cv1, INNER[kind])
    fused = assert_fuses(stage, torch.randn(2, 16, 16, 16))
    assert fused(torch.randn(1, 16, 16, 16)).shape == (1, 32, 8, 8)


def test_stage_hidden_is_required_so_each_model_has_one_spelling():
    data = load_arch("yolo_nas_s").data
    stages = [dict(s) for s in data["backbone"]["stages"]]
    del stages[2]["hidden"]
    bad = {**data, "backbone": {**data["backbone"], "stages": stages}}
    with pytest.raises(InputError) as err:
        Architecture.from_dict(bad, "bad.yaml")
    assert err.value.path == "backbone.stages[2].hidden"


def test_spp_fuses_and_pools_in_parallel():
    entry = load_blocks()["yolonas_spp"]
    assert entry.kind == "context"
    spp, c_out = entry.build(entry.params(out=24), CTX, 32)
    assert isinstance(spp, SPP) and c_out == 24
    assert [p.kernel_size for p in spp.pools] == [5, 9, 13]
    assert spp.cv1.conv.out_channels == 16 and spp.cv2.conv.in_channels == 64
    assert_fuses(spp, torch.randn(2, 32, 12, 12))


def test_spp_rejects_even_kernels_as_input_error():
    data = load_arch("yolo_nas_s").data
    bad = {**data, "backbone": {**data["backbone"], "context": {"type": "yolonas_spp", "out": 768, "kernels": [5, 8]}}}
    with pytest.raises(InputError) as err:
        Architecture.from_dict(bad, "bad.yaml")
    assert err.value.path == "backbone.context.kernels[1]"
    assert "odd" in err.value.expected


@pytest.mark.parametrize("kind", KINDS)
def test_up_stage_fuses(kind):
    up = YoloNASUpStage(32, 24, 16, UpLevel(out=16, blocks=2, hidden=8, block=kind), CTX, None)
    x, skip, skip_hi = torch.randn(2, 32, 4, 4), torch.randn(2, 24, 8, 8), torch.randn(2, 16, 16, 16)
    fused = assert_fuses(up, (x, skip, skip_hi))
    inter, out = fused(x, skip, skip_hi)
    assert inter.shape == (2, 16, 4, 4) and out.shape == (2, 16, 8, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_down_stage_fuses(kind):
    down = YoloNASDownStage(16, 24, DownLevel(out=32, blocks=2, hidden=8, block=kind), CTX, None)
    assert down.conv.conv.out_channels == 16  # out/2 before the concat
    x, lateral = torch.randn(2, 16, 8, 8), torch.randn(2, 24, 4, 4)
    fused = assert_fuses(down, (x, lateral))
    assert fused(x, lateral).shape == (2, 32, 4, 4)


def _pan_params() -> YoloNASPanParams:
    return YoloNASPanParams(
        up1=UpLevel(out=24, blocks=1, hidden=8, block="repvgg"),
        up2=UpLevel(out=16, blocks=2, hidden=8, concat_intermediates=True),
        down1=DownLevel(out=24, blocks=1, hidden=8, block="qarepvgg"),
        down2=DownLevel(out=32, blocks=1, hidden=8),
    )


def test_pan_neck_fuses_and_wires_levels():
    levels = [8, 16, 24, 32]
    entry = load_blocks()["yolonas_pan"]
    neck, outs = entry.build(_pan_params(), CTX, levels)
    assert isinstance(neck, YoloNASPan) and outs == [16, 24, 32]
    feats = tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(levels))  # strides 4..32
    fused = assert_fuses(neck, feats, as_list=True)
    p3, p4, p5 = fused(list(feats))
    assert p3.shape == (1, 16, 16, 16) and p4.shape == (1, 24, 8, 8) and p5.shape == (1, 32, 4, 4)
    assert neck.down2.blocks.conv1.conv.in_channels == 32 // 2 + 24  # lateral = up1's reduced input


def test_head_fuses_and_starts_at_one_percent():
    entry = load_blocks()["yolonas_head"]
    head, none = entry.build(entry.params(width_mult=0.125), CTX, [16, 24, 32])
    assert none is None and isinstance(head, YoloNASHead)
    assert head.bins == CTX.reg_max + 1
    assert [lvl.stem.conv.out_channels for lvl in head.levels] == [16, 32, 64]
    for lvl in head.levels:
        assert torch.allclose(torch.sigmoid(lvl.cls_pred.bias), torch.full((CTX.nc,), 0.01))
    feats = tuple(torch.randn(2, c, s, s) for c, s in zip([16, 24, 32], [8, 4, 2], strict=True))
    fused = assert_fuses(head, feats, as_list=True)
    out = fused(list(feats))
    assert [tuple(b.shape) for b, _ in out] == [(2, 68, 8, 8), (2, 68, 4, 4), (2, 68, 2, 2)]
    assert [tuple(c.shape) for _, c in out] == [(2, 5, 8, 8), (2, 5, 4, 4), (2, 5, 2, 2)]


def test_head_widths_follow_super_gradients_rounding():
    assert head_widths(0.5) == [64, 128, 256]
    assert head_widths(0.75) == [96, 192, 384]
    assert head_widths(1.0) == [128, 256, 512]
    assert head_widths(0.3) == [40, 80, 160]  # int(38.4)=38 → 40: rounded up to a multiple of 8


# super-gradients 3.7.1, nc=80: (training form without the placeholder conv, deploy form after fusion)
PUBLISHED = {
    "yolo_nas_s": (12_878_304, 12_184_240),
    "yolo_nas_m": (33_861_346, 31_922_098),
    "yolo_nas_l": (44_529_448, 42_017_784),
}


def sg_deploy_count(model: nn.Module, fused_count: int) -> int:
    """Our fused count, restated in super-gradients' deploy convention.

    super-gradients merges each QARepVGG's branches into one conv (+bias) but keeps its post-BN, and
    keeps every other BatchNorm as a layer (2 parameters per channel); we fold all of them into conv
    biases (1 per channel). So: +2 per QARepVGG output channel, +1 per channel of every other BN.
    """
    qa_channels = sum(m.c_out for m in model.modules() if isinstance(m, QARepVGGBlock))
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    other_bn_channels = bn_channels - 2 * qa_channels  # each QARepVGG holds two BNs of c_out
    return fused_count + 2 * qa_channels + other_bn_channels


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_yolo_nas_preset_counts(name):
    training, deploy = PUBLISHED[name]
    with torch.device("meta"):  # shapes only: counting needs no weight initialisation or arithmetic
        model = build_model(load_arch(name))
        fused = count_params(fused_copy(model))
    assert count_params(model) == training
    assert abs(fused - deploy) / deploy <= 0.01, fused
    assert sg_deploy_count(model, fused) == deploy


def test_yolo_nas_s_end_to_end_shapes_and_fusion():
    torch.manual_seed(0)
    model = build_model(load_arch("yolo_nas_s"), nc=3)
    assert model.bins == 17
    assert isinstance(model.stem, QARepVGGBlock) and not model.stem.has_identity
    x = torch.randn(2, 3, 96, 96)
    raw = model(x)
    assert [tuple(b.shape) for b, _ in raw] == [(2, 68, 12, 12), (2, 68, 6, 6), (2, 68, 3, 3)]
    assert [tuple(c.shape) for _, c in raw] == [(2, 3, 12, 12), (2, 3, 6, 6), (2, 3, 3, 3)]
    model.eval()
    model.export_raw = True
    randomize(model)
    with torch.no_grad():
        ref = model(x)
        fused = fused_copy(model)
        got = fused(x)
    for (rb, rc), (fb, fc) in zip(ref, got, strict=True):
        scale = max(float(rb.abs().max()), float(rc.abs().max()), 1.0)
        assert float((rb - fb).abs().max()) / scale <= 1e-4
        assert float((rc - fc).abs().max()) / scale <= 1e-4
    fused.export_raw = False
    with torch.no_grad():
        boxes, scores = fused(x)
    n = 12 * 12 + 6 * 6 + 3 * 3
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, 3)
    assert bool((boxes[..., 2:] >= boxes[..., :2]).all())
    assert math.isfinite(float(boxes.sum()))
