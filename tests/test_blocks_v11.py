"""YOLO11 and YOLOv5u blocks: fused form equals training form per block; presets match Ultralytics' counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasearch.nn.blocks.c2f import Bottleneck
from nasearch.nn.blocks.c2psa import C2PSA, Attention, PSABlock, default_heads
from nasearch.nn.blocks.c3 import C3
from nasearch.nn.blocks.c3k2 import C3k2
from nasearch.nn.blocks.v5_pan import V5Pan
from nasearch.nn.blocks.v8_head import V8Head
from nasearch.nn.blocks.v11_head import dw_branch
from nasearch.nn.registry import BuildContext, load_blocks
from nasearch.nn.specs.v5_pan import V5PanParams, V5UpLevel
from nasearch.nn.specs.v8_pan import PanLevel
from nasearch.nn.specs.v11_pan import C3k2Level, V11PanParams
from nasearch.proxy.scale import scale_arch
from nasearch.space import build_model, load_arch, load_space
from tests.conftest import SPACES
from tests.fusion import assert_fuses
from tests.published import assert_matches_ultralytics

CTX = BuildContext(nc=5, reg_max=16)


@pytest.mark.parametrize("shortcut", [True, False])
def test_c3_uses_1x1_then_3x3_bottlenecks_and_fuses(shortcut):
    c3 = C3(16, 24, 2, shortcut, CTX)
    assert c3.cv1.conv.out_channels == 12 and c3.cv3.conv.in_channels == 24
    assert [b.cv1.conv.kernel_size for b in c3.m] == [(1, 1), (1, 1)] and c3.m[0].cv2.conv.kernel_size == (3, 3)
    assert all(b.add == shortcut for b in c3.m)
    fused = assert_fuses(c3, torch.randn(2, 16, 10, 10))
    assert fused(torch.randn(1, 16, 10, 10)).shape == (1, 24, 10, 10)


@pytest.mark.parametrize("c3k", [False, True])
def test_c3k2_inner_blocks_and_fusion(c3k):
    block = C3k2(16, 32, 2, c3k, True, CTX, e=0.25)
    assert block.c == 8 and len(block.m) == 2 and block.cv2.conv.in_channels == 4 * 8
    inner = block.m[0]
    if c3k:  # C3k: a C3 of two 3×3-3×3 bottlenecks at half its width
        assert isinstance(inner, C3) and len(inner.m) == 2 and inner.cv1.conv.out_channels == 4
        assert inner.m[0].cv1.conv.kernel_size == (3, 3)
    else:  # a Bottleneck whose hidden width is half of c
        assert isinstance(inner, Bottleneck) and inner.cv1.conv.out_channels == 4 and inner.add
    fused = assert_fuses(block, torch.randn(2, 16, 12, 12))
    assert fused(torch.randn(1, 16, 12, 12)).shape == (1, 32, 12, 12)


def test_attention_shapes_and_positional_depthwise_conv():
    attn = Attention(128, 2, CTX)
    assert (attn.head_dim, attn.key_dim) == (64, 32)
    assert attn.qkv.conv.out_channels == 128 + 2 * 32 * 2
    assert attn.pe.conv.groups == 128 and attn.pe.conv.kernel_size == (3, 3)
    assert all(isinstance(m.act, nn.Identity) for m in (attn.qkv, attn.proj, attn.pe))
    assert_fuses(attn, torch.randn(2, 128, 5, 6))


def test_attention_mixes_positions():
    """Changing one position changes the output at every other one (a conv-only block would not)."""
    attn = Attention(64, 1, CTX).eval()
    x = torch.randn(1, 64, 6, 6)
    y = x.clone()
    y[..., 0, 0] += 3.0
    with torch.no_grad():
        diff = (attn(x) - attn(y)).abs()
    assert float(diff[..., 5, 5].max()) > 1e-4  # far outside the 3×3 positional conv's reach


def test_psa_block_and_c2psa_fuse():
    assert_fuses(PSABlock(64, 1, CTX), torch.randn(2, 64, 4, 4))
    c2psa = C2PSA(256, 2, CTX)
    assert c2psa.c == 128 and len(c2psa.m) == 2 and c2psa.m[0].attn.heads == 2
    fused = assert_fuses(c2psa, torch.randn(1, 256, 4, 5))
    assert fused(torch.randn(1, 256, 4, 5)).shape == (1, 256, 4, 5)


def test_default_heads_is_one_per_64_channels_and_always_divides():
    assert [default_heads(c) for c in (32, 64, 128, 192, 256, 384)] == [1, 1, 2, 3, 4, 6]
    assert all(c % default_heads(c) == 0 for c in range(8, 1025, 8))


def test_sppf_c2psa_context_builds_and_fuses():
    entry = load_blocks()["sppf_c2psa"]
    assert entry.kind == "context"
    block, c_out = entry.build(entry.params(out=128, psa_blocks=2), CTX, 96)
    assert c_out == 128 and block[0].cv1.conv.out_channels == 48 and len(block[1].m) == 2
    fused = assert_fuses(block, torch.randn(1, 96, 4, 4))
    assert fused(torch.randn(1, 96, 4, 4)).shape == (1, 128, 4, 4)


def test_c3_and_c3k2_stages_downsample_and_fuse():
    blocks = load_blocks()
    c3, c_out = blocks["c3_stage"].build(blocks["c3_stage"].params(out=24, blocks=2), CTX, 16)
    assert c_out == 24
    assert assert_fuses(c3, torch.randn(1, 16, 12, 12))(torch.randn(1, 16, 12, 12)).shape == (1, 24, 6, 6)
    stage, c_out = blocks["c3k2_stage"].build(blocks["c3k2_stage"].params(out=32, down=16, blocks=1, e=0.25), CTX, 8)
    assert c_out == 32 and stage[0].conv.out_channels == 16 and isinstance(stage[1], C3k2)
    assert assert_fuses(stage, torch.randn(1, 8, 12, 12))(torch.randn(1, 8, 12, 12)).shape == (1, 32, 6, 6)


def _feats(levels):
    return tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(levels))


def test_necks_fuse():
    levels = [8, 16, 24, 32]
    v11 = V11PanParams(
        up1=C3k2Level(out=24, blocks=1),
        up2=C3k2Level(out=16, blocks=1),
        down1=C3k2Level(out=24, blocks=1),
        down2=C3k2Level(out=32, blocks=1, c3k=True),
    )
    neck, out = load_blocks()["v11_pan"].build(v11, CTX, levels)
    assert out == [16, 24, 32] and isinstance(neck.bu2, C3k2) and isinstance(neck.bu2.m[0], C3)
    assert_fuses(neck, _feats(levels), as_list=True)
    v5 = V5PanParams(
        up1=V5UpLevel(out=24, blocks=1, lateral=20),
        up2=V5UpLevel(out=16, blocks=2, lateral=12),
        down1=PanLevel(out=24, blocks=1),
        down2=PanLevel(out=32, blocks=1),
    )
    neck = V5Pan(v5, CTX, levels)
    assert neck.bu1.cv1.conv.in_channels == 16 + 12 and neck.bu2.cv1.conv.in_channels == 24 + 20
    outs = assert_fuses(neck, _feats(levels), as_list=True)(list(_feats(levels)))
    assert [o.shape[1] for o in outs] == [16, 24, 32]


def test_v11_head_class_branch_is_depthwise_separable_and_fuses():
    head = V8Head([16, 24, 32], CTX, 64, 20, cls_branch=dw_branch)
    cls = head.cls[1]
    assert [m.conv.groups for m in cls[:4]] == [24, 1, 20, 1]
    assert [m.conv.kernel_size for m in cls[:4]] == [(3, 3), (1, 1), (3, 3), (1, 1)]
    assert cls[-1].out_channels == 5 and head.box[0][-1].out_channels == 64
    feats = tuple(torch.randn(1, c, s, s) for c, s in zip([16, 24, 32], [8, 4, 2], strict=True))
    assert_fuses(head, feats, as_list=True)


# Ultralytics 8.4.190, `DetectionModel("<name>.yaml")`, every nn.Parameter counted (DFL's fixed 1×1 projection
# included), and its docs' fused GFLOPs at 640 (YOLO11: docs/en/models/yolo11.md; YOLOv5u: docs/en/models/yolov5.md).
PUBLISHED = {
    "yolo11n": (2_624_080, 6.5),
    "yolo11s": (9_458_752, 21.5),
    "yolo11m": (20_114_688, 68.0),
    "yolo11l": (25_372_160, 86.9),
    "yolo11x": (56_966_176, 194.9),
    "yolov5nu": (2_654_816, 7.7),
    "yolov5su": (9_153_152, 24.0),
    "yolov5mu": (25_111_456, 64.2),
    "yolov5lu": (53_225_024, 135.0),
    "yolov5xu": (97_276_448, 246.4),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_counts(name):
    assert_matches_ultralytics(name, *PUBLISHED[name])


@pytest.mark.parametrize("name", ["yolo11n", "yolov5nu"])
def test_preset_fuses_end_to_end(name):
    model = build_model(load_arch(name), nc=3)
    assert_fuses(model, torch.randn(1, 3, 96, 96))


def test_yolo11_space_holds_the_five_scales_and_its_samples_fuse():
    space = load_space(SPACES / "yolo11_space.yaml")
    assert {"yolo11n", "yolo11s", "yolo11m", "yolo11l", "yolo11x"} <= set(space.presets_inside())
    assert not {"yolov8n", "yolov5nu"} & set(space.presets_inside())
    arch = scale_arch(space.sample(3), width=0.25, imgsz=64)
    assert_fuses(build_model(arch, nc=3), torch.randn(1, 3, 64, 64))


def test_main_space_can_choose_c3k2_stages_and_the_c2psa_context():
    space = load_space(SPACES / "yolo_nas_space.yaml")
    options = {d.name: d for d in space.decisions()}
    assert "backbone.context" in options and all(f"backbone.stages[{i}]|c3k2_stage.c3k" in options for i in range(4))
    for seed in range(40):  # the first sample with both new blocks
        arch = space.sample(seed)
        types = {s["type"] for s in arch.data["backbone"]["stages"]}
        if "c3k2_stage" in types and arch.data["backbone"]["context"]["type"] == "sppf_c2psa":
            break
    else:
        pytest.fail("no sample of 40 chose a C3k2 stage and the C2PSA context")
    small = scale_arch(arch, width=0.25, depth=0.5, imgsz=64)
    assert_fuses(build_model(small, nc=3), torch.randn(1, 3, 64, 64))
