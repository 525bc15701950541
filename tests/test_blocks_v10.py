"""YOLOv10 blocks: fused form equals training form per block; presets match Ultralytics' counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasearch.nn.blocks.c2f import Bottleneck, C2f
from nasearch.nn.blocks.c2fcib import CIB, C2fCIB, LargeKernelDW, make_c2f
from nasearch.nn.blocks.c2psa import C2PSA
from nasearch.nn.blocks.scdown import SCDown
from nasearch.nn.blocks.v8_head import V8Head
from nasearch.nn.blocks.v11_head import dw_branch
from nasearch.nn.inspect import count_params
from nasearch.nn.registry import BuildContext, load_blocks
from nasearch.nn.specs.v10_pan import C2fInnerLevel, V10PanParams
from nasearch.space import build_model, load_arch
from tests.fusion import assert_fuses
from tests.published import assert_matches_ultralytics

CTX = BuildContext(nc=5, reg_max=16)


# Every nn.Parameter of Ultralytics 8.4.190's module of the same shape (SCDown(16, 32, 3, 2), RepVGGDW(12),
# CIB(16, 16, True, 1.0, lk), C2fCIB(16, 32, 2, True, lk=True)), measured from the package.
@pytest.mark.parametrize(
    "make,params",
    [
        (lambda: SCDown(16, 32, CTX), 928),
        (lambda: LargeKernelDW(12, CTX), 744),
        (lambda: CIB(16, 16, True, CTX, 1.0, lk=False), 1824),
        (lambda: CIB(16, 16, True, CTX, 1.0, lk=True), 3456),
        (lambda: C2fCIB(16, 32, 2, True, CTX, lk=True), 9600),
    ],
)
def test_block_parameter_counts_match_ultralytics(make, params):
    assert count_params(make()) == params


def test_scdown_is_pointwise_then_strided_depthwise_and_fuses():
    down = SCDown(16, 32, CTX)
    assert (down.cv1.conv.kernel_size, down.cv1.conv.groups) == ((1, 1), 1)
    assert (down.cv2.conv.kernel_size, down.cv2.conv.stride, down.cv2.conv.groups) == ((3, 3), (2, 2), 32)
    assert isinstance(down.cv2.act, nn.Identity) and not isinstance(down.cv1.act, nn.Identity)
    fused = assert_fuses(down, torch.randn(2, 16, 12, 12))
    assert fused(torch.randn(1, 16, 12, 12)).shape == (1, 32, 6, 6)


def test_large_kernel_depthwise_fuses_into_one_7x7():
    block = LargeKernelDW(12, CTX)
    assert block.conv.conv.kernel_size == (7, 7) and block.conv1.conv.kernel_size == (3, 3)
    assert block.conv.conv.groups == block.conv1.conv.groups == 12
    fused = assert_fuses(block, torch.randn(2, 12, 9, 9))
    assert fused.fused and fused.conv1 is None and fused.conv.conv.kernel_size == (7, 7)
    assert sum(isinstance(m, nn.Conv2d) for m in fused.modules()) == 1


@pytest.mark.parametrize("lk", [False, True])
def test_cib_layout_residual_and_fusion(lk):
    cib = CIB(16, 16, True, CTX, e=1.0, lk=lk)
    convs = [m for m in cib.cv1 if not isinstance(m, LargeKernelDW)]
    assert [m.conv.groups for m in convs] == ([16, 1, 1, 16] if lk else [16, 1, 32, 1, 16])
    assert cib.cv1[1].conv.out_channels == 32 and cib.add
    assert isinstance(cib.cv1[2], LargeKernelDW) == lk
    assert not CIB(16, 24, True, CTX).add and not CIB(16, 16, False, CTX).add
    assert_fuses(cib, torch.randn(2, 16, 10, 10))


def test_c2f_inner_blocks_by_name():
    plain = make_c2f("bottleneck", 16, 32, 2, True, CTX)
    assert type(plain) is C2f and all(isinstance(b, Bottleneck) for b in plain.m)
    cib = make_c2f("cib", 16, 32, 2, True, CTX)
    assert isinstance(cib, C2fCIB) and all(isinstance(b, CIB) and b.add for b in cib.m)
    assert cib.m[0].cv1[1].conv.out_channels == 2 * cib.c  # CIB at expansion 1 of the C2f's hidden width
    lk = make_c2f("cib_lk", 16, 32, 1, False, CTX)
    assert isinstance(lk.m[0].cv1[2], LargeKernelDW) and not lk.m[0].add
    fused = assert_fuses(lk, torch.randn(1, 16, 8, 8))
    assert fused(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)


def test_scdown_stage_builds_and_fuses():
    entry = load_blocks()["scdown_stage"]
    assert entry.kind == "stage"
    stage, c_out = entry.build(entry.params(out=32, blocks=2, block="cib_lk"), CTX, 16)
    assert c_out == 32 and isinstance(stage[0], SCDown) and isinstance(stage[1], C2fCIB)
    fused = assert_fuses(stage, torch.randn(1, 16, 12, 12))
    assert fused(torch.randn(1, 16, 12, 12)).shape == (1, 32, 6, 6)


def test_v10_neck_downsamples_to_p5_with_scdown_and_fuses():
    levels = [8, 16, 24, 32]
    p = V10PanParams(
        up1=C2fInnerLevel(out=24, blocks=1, block="cib"),
        up2=C2fInnerLevel(out=16, blocks=1),
        down1=C2fInnerLevel(out=24, blocks=1),
        down2=C2fInnerLevel(out=32, blocks=2, block="cib_lk"),
    )
    neck, out = load_blocks()["v10_pan"].build(p, CTX, levels)
    assert out == [16, 24, 32] and isinstance(neck.down2, SCDown) and not isinstance(neck.down1, SCDown)
    assert isinstance(neck.td1, C2fCIB) and all(b.add for b in neck.td1.m)  # cib_shortcut defaults on
    assert type(neck.td2) is C2f and not any(b.add for b in neck.td2.m)  # shortcut defaults off
    feats = tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(levels))
    outs = assert_fuses(neck, feats, as_list=True)(list(feats))
    assert [o.shape[1:] for o in outs] == [(16, 16, 16), (24, 8, 8), (32, 4, 4)]


def test_psa_is_c2psa_with_one_block():
    """YOLOv10's PSA and YOLO11's C2PSA of one block are one module: the presets use `sppf_c2psa`."""
    psa = C2PSA(256, 1, CTX)
    assert psa.c == 128 and len(psa.m) == 1 and psa.m[0].attn.heads == 2
    assert count_params(psa) == 249_728  # Ultralytics 8.4.190 PSA(256, 256), every nn.Parameter


def test_v10_one_to_one_head_is_the_v11_head():
    head = V8Head([16, 24, 32], CTX, 64, 20, cls_branch=dw_branch)
    assert [m.conv.groups for m in head.cls[0][:4]] == [16, 1, 20, 1]
    model = build_model(load_arch("yolov10n"), nc=3)
    assert type(model.head) is V8Head and model.head.cls[2][0].conv.groups == 256


# Ultralytics 8.4.190, `DetectionModel("<name>.yaml")`: every nn.Parameter (its model.info() count, both heads),
# the parameters of its one-to-many head (`cv2`, `cv3`: training only; `fuse()` drops them), and its docs'
# fused GFLOPs at 640 (docs/en/models/yolov10.md). The preset is the deployed network: the count minus the
# one-to-many head is the docs' figure (n 2.3M ... x 29.5M), compared like with like by `assert_matches_ultralytics`
# (which also leaves out DFL's fixed projection, as for every preset).
PUBLISHED = {
    "yolov10n": (2_775_520, 464_896, 6.7),
    "yolov10s": (8_128_272, 850_352, 21.6),
    "yolov10m": (16_576_768, 1_186_800, 59.1),
    "yolov10b": (20_574_384, 1_472_688, 92.0),
    "yolov10l": (25_888_688, 1_472_688, 120.3),
    "yolov10x": (31_808_960, 2_269_552, 160.4),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_counts(name):
    total, one_to_many, gflops = PUBLISHED[name]
    assert_matches_ultralytics(name, total - one_to_many, gflops)


@pytest.mark.parametrize("name", ["yolov10n", "yolov10s", "yolov10m"])
def test_preset_fuses_end_to_end(name):
    model = build_model(load_arch(name), nc=3)
    assert_fuses(model, torch.randn(1, 3, 64, 64))
