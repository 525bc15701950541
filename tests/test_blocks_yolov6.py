"""YOLOv6 3.0 blocks: fused form equals training form per block; presets match meituan/YOLOv6's counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasearch.errors import InputError
from nasearch.nn.blocks.repvgg import QARepVGGBlock, RepVGGBlock
from nasearch.nn.blocks.sppf import SPPF
from nasearch.nn.blocks.yolov6 import CSPSPPF, BepC3, BottleRep, RepBlock
from nasearch.nn.blocks.yolov6_head import V6Head
from nasearch.nn.blocks.yolov6_neck import BiC, V6RepBiFPAN
from nasearch.nn.common import ConvBNAct
from nasearch.nn.inspect import count_flops, count_params, fused_copy
from nasearch.nn.registry import BuildContext, load_blocks
from nasearch.nn.specs.yolov6_neck import NeckLevel, V6RepBiFPANParams
from nasearch.space import Architecture, build_model, load_arch
from tests.fusion import assert_fuses, randomize

CTX = BuildContext(act="relu", nc=5, reg_max=16)
KINDS = ["repvgg", "qarepvgg", "conv"]
INNER = {"qarepvgg": QARepVGGBlock, "repvgg": RepVGGBlock, "conv": ConvBNAct}


@pytest.mark.parametrize("kind", KINDS)
def test_rep_block_first_block_maps_channels_then_keeps_them(kind):
    block = RepBlock(8, 16, 3, kind, CTX, None)
    assert len(block) == 3 and all(isinstance(b, INNER[kind]) for b in block)
    assert [_in(b) for b in block] == [8, 16, 16]
    if kind != "conv":  # identity branches only where shapes agree
        assert [b.has_identity for b in block] == [False, True, True]
    fused = assert_fuses(block, torch.randn(2, 8, 10, 10))
    assert fused(torch.randn(1, 8, 10, 10)).shape == (1, 16, 10, 10)


def _in(block: nn.Module) -> int:
    return block.conv.in_channels if isinstance(block, ConvBNAct) else block.c_in


@pytest.mark.parametrize("kind", KINDS)
def test_bottlerep_fuses_and_adds_alpha_times_input(kind):
    block = BottleRep(16, 16, kind, CTX, None)
    assert block.alpha is not None and block.alpha.numel() == 1
    assert_fuses(block, torch.randn(2, 16, 9, 9))
    block.eval()
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        before = block(x)
        block.alpha.add_(0.5)
        assert torch.allclose(block(x) - before, 0.5 * x, atol=1e-5)
    assert BottleRep(8, 16, kind, CTX, None).alpha is None  # no residual across a width change


@pytest.mark.parametrize("kind", KINDS)
def test_bepc3_fuses_with_hidden_width_from_e(kind):
    csp = BepC3(24, 48, 2, 2 / 3, kind, CTX, None)
    assert csp.cv1.conv.out_channels == 32 and csp.cv3.conv.in_channels == 64
    assert len(csp.m) == 2 and isinstance(csp.m[0].conv1, INNER[kind])
    fused = assert_fuses(csp, torch.randn(2, 24, 8, 8))
    assert fused(torch.randn(1, 24, 8, 8)).shape == (1, 48, 8, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_rep_stage_downsamples_without_identity_and_fuses(kind):
    entry = load_blocks()["v6_rep_stage"]
    assert entry.kind == "stage"
    stage, c_out = entry.build(entry.params(out=16, blocks=2, block=kind), CTX, 8)
    assert c_out == 16
    down, body = stage
    assert isinstance(down, INNER[kind]) and isinstance(body, RepBlock) and len(body) == 2
    if kind != "conv":
        assert down.stride == 2 and not down.has_identity
    fused = assert_fuses(stage, torch.randn(2, 8, 16, 16))
    assert fused(torch.randn(1, 8, 16, 16)).shape == (1, 16, 8, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_cspbep_stage_holds_bottlereps_and_fuses(kind):
    entry = load_blocks()["v6_cspbep_stage"]
    stage, c_out = entry.build(entry.params(out=24, blocks=3, e=0.5, block=kind, act="silu"), CTX, 16)
    assert c_out == 24
    body = stage[1]
    assert isinstance(body, BepC3) and len(body.m) == 3 and body.cv1.conv.out_channels == 12
    assert isinstance(body.cv1.act, nn.SiLU)  # the stage's act overrides the global ReLU everywhere
    fused = assert_fuses(stage, torch.randn(2, 16, 12, 12))
    assert fused(torch.randn(1, 16, 12, 12)).shape == (1, 24, 6, 6)


def test_simsppf_is_relu_sppf_by_default_and_fuses():
    entry = load_blocks()["v6_simsppf"]
    assert entry.kind == "context"
    spp, c_out = entry.build(entry.params(out=24), BuildContext(act="silu"), 32)
    assert isinstance(spp, SPPF) and c_out == 24
    assert isinstance(spp.cv1.act, nn.ReLU) and spp.cv1.conv.out_channels == 16
    assert_fuses(spp, torch.randn(2, 32, 10, 10))


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_cspsppf_widths_and_fusion(act):
    entry = load_blocks()["v6_cspsppf"]
    spp, c_out = entry.build(entry.params(out=32, act=act), CTX, 48)
    assert isinstance(spp, CSPSPPF) and c_out == 32
    assert spp.cv1.conv.out_channels == 16 and spp.cv5.conv.in_channels == 64 and spp.cv7.conv.in_channels == 32
    assert spp.cv3.conv.kernel_size == (3, 3) and spp.cv6.conv.kernel_size == (3, 3)
    assert type(spp.cv7.act).__name__.lower() == act
    fused = assert_fuses(spp, torch.randn(2, 48, 10, 10))
    assert fused(torch.randn(1, 48, 10, 10)).shape == (1, 32, 10, 10)


def test_context_rejects_even_pool_kernel_as_input_error():
    data = load_arch("yolov6n").data
    bad = {**data, "backbone": {**data["backbone"], "context": {"type": "v6_cspsppf", "out": 256, "k": 4}}}
    with pytest.raises(InputError) as err:
        Architecture.from_dict(bad, "bad.yaml")
    assert err.value.path == "backbone.context.k"


def test_bic_fuses_three_resolutions():
    bic = BiC(24, 16, 12, CTX, "relu")
    deep, same, hi = torch.randn(2, 12, 4, 4), torch.randn(2, 24, 8, 8), torch.randn(2, 16, 16, 16)
    fused = assert_fuses(bic, (deep, same, hi))
    assert isinstance(fused.upsample, nn.ConvTranspose2d) and fused.upsample.bias is not None
    assert fused.cv3.conv.in_channels == 36
    with torch.no_grad():
        out = fused(deep, same, hi)
        assert out.shape == (2, 12, 8, 8)
        # the higher-resolution input really contributes
        assert float((fused(deep, same, hi + 1.0) - out).abs().max()) > 1e-3


def _neck_params(csp: bool, block: str) -> V6RepBiFPANParams:
    return V6RepBiFPANParams(
        up1=NeckLevel(out=16, blocks=2),
        up2=NeckLevel(out=8, blocks=1),
        down1=NeckLevel(out=16, blocks=1),
        down2=NeckLevel(out=24, blocks=2),
        csp=csp,
        e=0.5,
        block=block,
        act="silu",
    )


@pytest.mark.parametrize(("csp", "block"), [(False, "repvgg"), (True, "repvgg"), (True, "conv"), (False, "qarepvgg")])
def test_repbifpan_fuses_and_wires_levels(csp, block):
    levels = [8, 16, 24, 32]
    entry = load_blocks()["v6_repbifpan"]
    neck, outs = entry.build(_neck_params(csp, block), CTX, levels)
    assert isinstance(neck, V6RepBiFPAN) and outs == [8, 16, 24]
    assert isinstance(neck.p4, BepC3 if csp else RepBlock)
    assert isinstance(neck.reduce0.act, nn.ReLU) and isinstance(neck.bic0.cv3.act, nn.ReLU)  # fuse_act
    n5_in = neck.n5.cv1.conv.in_channels if csp else _in(neck.n5[0])
    assert n5_in == 16 + 16  # down1 output ‖ the reduced P5 (up1 width)
    feats = tuple(torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(levels))  # strides 4..32
    fused = assert_fuses(neck, feats, as_list=True)
    with torch.no_grad():
        p3, p4, p5 = fused(list(feats))
    assert p3.shape == (1, 8, 16, 16) and p4.shape == (1, 16, 8, 8) and p5.shape == (1, 24, 4, 4)
    with torch.no_grad():  # the stride-4 level feeds P3 through BiC (YOLOv6's fuse_P2)
        moved = fused([feats[0] + 1.0, *feats[1:]])[0]
    assert float((moved - p3).abs().max()) > 1e-3


@pytest.mark.parametrize(("dfl", "bins"), [(True, 17), (False, 1)])
def test_head_bins_shapes_prior_and_fusion(dfl, bins):
    entry = load_blocks()["v6_head"]
    head, none = entry.build(entry.params(dfl=dfl, act="silu"), CTX, [8, 16, 24])
    assert none is None and isinstance(head, V6Head) and head.bins == bins
    lvl = head.levels[0]
    assert lvl.stem.conv.kernel_size == (1, 1) and lvl.cls_conv.conv.kernel_size == (3, 3)
    assert isinstance(lvl.stem.act, nn.SiLU)
    for level in head.levels:
        assert torch.allclose(torch.sigmoid(level.cls_pred.bias), torch.full((CTX.nc,), 0.01))
    feats = tuple(torch.randn(2, c, s, s) for c, s in zip([8, 16, 24], [8, 4, 2], strict=True))
    fused = assert_fuses(head, feats, as_list=True)
    out = fused(list(feats))
    assert [tuple(b.shape) for b, _ in out] == [(2, 4 * bins, s, s) for s in (8, 4, 2)]
    assert [tuple(c.shape) for _, c in out] == [(2, 5, s, s) for s in (8, 4, 2)]


# meituan/YOLOv6 (commit e86a483) built from its own configs with nc=80, counted with the same conventions:
# (training params, deploy params after fuse + RepVGG switch_to_deploy). Its Detect also holds 2 × 17
# constant DFL projection weights (`proj`, `proj_conv`, even in N/S where DFL is off) that we do not need.
YOLOV6_CODE = {
    "yolov6n": (5_058_270, 4_646_974),
    "yolov6s": (20_147_358, 18_537_310),
    "yolov6m": (37_740_982, 34_855_958),
    "yolov6l": (59_638_731, 59_607_563),
}
DFL_CONSTANTS = 34
# README table (deploy form, 640): params M and GFLOPs.
README = {"yolov6n": (4.7, 11.4), "yolov6s": (18.5, 45.3), "yolov6m": (34.9, 85.8), "yolov6l": (59.6, 150.7)}


def thop_gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs in the README's convention: thop MACs × 2 with no conv bias (= torch's flop counter) and a
    transposed conv costed as output elements × C_in × k² (thop applies the conv formula to it: 4× a 2×2/2)."""
    extra: list[int] = []

    def hook(m: nn.ConvTranspose2d, inputs: tuple[torch.Tensor], out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        extra.append(2 * k * (out.numel() * m.in_channels - inputs[0].numel() * m.out_channels))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    flops = count_flops(model, imgsz)
    for h in handles:
        h.remove()
    return (flops + sum(extra)) / 1e9


@pytest.mark.parametrize("name", sorted(YOLOV6_CODE))
def test_yolov6_preset_counts(name):
    training, deploy = YOLOV6_CODE[name]
    params_m, gflops = README[name]
    with torch.device("meta"):  # shapes only: counting needs no weight initialisation or arithmetic
        model = build_model(load_arch(name))
        fused = fused_copy(model)
        ours = count_flops(fused, 640) / 1e9
        readme_style = thop_gflops(fused, 640)
    assert count_params(model) == training - DFL_CONSTANTS
    assert count_params(fused) == deploy - DFL_CONSTANTS
    assert abs(count_params(fused) / 1e6 - params_m) / params_m <= 0.03
    assert abs(ours - gflops) / gflops <= 0.03  # 2 × MACs by torch's counter: 0.7-0.8% under the README
    assert round(readme_style, 1) == gflops  # and exactly the README once its transposed-conv rule is applied


def test_presets_use_the_published_structure():
    n, m, l_ = (load_arch(x).data for x in ("yolov6n", "yolov6m", "yolov6l"))
    assert [s["blocks"] for s in n["backbone"]["stages"]] == [2, 4, 6, 2]
    assert n["backbone"]["context"]["type"] == "v6_cspsppf" and m["backbone"]["context"]["type"] == "v6_simsppf"
    assert n["head"]["dfl"] is False and m["head"]["dfl"] is True
    assert l_["act"] == "silu" and l_["neck"]["fuse_act"] == "relu" and l_["neck"]["block"] == "conv"


def test_yolov6n_end_to_end_shapes_and_fusion():
    torch.manual_seed(0)
    model = build_model(load_arch("yolov6n"), nc=3)
    assert model.bins == 1
    assert isinstance(model.stem, RepVGGBlock) and not model.stem.has_identity
    model.eval()
    model.export_raw = True  # the raw per-level outputs, as in training mode, without autograd's cost
    randomize(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        fused = fused_copy(model)
        got = fused(x)
    assert [tuple(b.shape) for b, _ in ref] == [(1, 4, 8, 8), (1, 4, 4, 4), (1, 4, 2, 2)]
    assert [tuple(c.shape) for _, c in ref] == [(1, 3, 8, 8), (1, 3, 4, 4), (1, 3, 2, 2)]
    for (rb, rc), (fb, fc) in zip(ref, got, strict=True):
        scale = max(float(rb.abs().max()), float(rc.abs().max()), 1.0)
        assert float((rb - fb).abs().max()) / scale <= 1e-4
        assert float((rc - fc).abs().max()) / scale <= 1e-4
    fused.export_raw = False
    with torch.no_grad():
        boxes, scores = fused(x)
    n = 8 * 8 + 4 * 4 + 2 * 2
    assert boxes.shape == (1, n, 4) and scores.shape == (1, n, 3)
    assert math.isfinite(float(boxes.sum()))
    # bins = 1: distances are the raw regression outputs times the stride, measured from the cell centre
    b0 = got[0][0][0, :, 0, 0]
    expected = torch.tensor([4.0, 4.0, 4.0, 4.0]) + torch.stack((-b0[0], -b0[1], b0[2], b0[3])) * 8
    assert torch.allclose(boxes[0, 0], expected, atol=1e-3)


def test_yolov6m_has_dfl_bins_and_output_shapes():
    with torch.device("meta"):  # shapes only
        model = build_model(load_arch("yolov6m"), nc=2)
        assert model.bins == 17
        raw = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(b.shape) for b, _ in raw] == [(1, 68, 8, 8), (1, 68, 4, 4), (1, 68, 2, 2)]


V6_SPACE = """
name: v6_tiny
nc: 3
imgsz: 64
act: relu
backbone:
  stem: {type: repvgg_stem, out: 8, variant: {choice: [repvgg, qarepvgg]}}
  stages:
    - {type: v6_rep_stage, out: 8, blocks: {range: [1, 2]}, block: {choice: [repvgg, conv]}}
    - {type: v6_cspbep_stage, out: 16, blocks: 1, e: {range: [0.25, 0.5], step: 0.25}}
    - {type: v6_rep_stage, out: 16, blocks: 1}
    - {type: v6_cspbep_stage, out: 24, blocks: 1, act: {choice: [relu, silu]}}
  context: {choice: [{type: v6_simsppf, out: 24}, {type: v6_cspsppf, out: 24, k: {choice: [3, 5]}}]}
neck:
  type: v6_repbifpan
  up1: {out: 16, blocks: 1}
  up2: {out: {choice: [8, 16]}, blocks: 1}
  down1: {out: 16, blocks: 1}
  down2: {out: 24, blocks: 1}
  csp: {choice: [false, true]}
head: {type: v6_head, dfl: {choice: [false, true]}, act: silu}
"""


def test_v6_blocks_are_searchable(tmp_path):
    from nasearch.space import load_space

    path = tmp_path / "v6.yaml"
    path.write_text(V6_SPACE)
    space = load_space(path)
    assert space.cardinality() == 2 * 2 * 2 * 2 * 2 * (1 + 2) * 2 * 2 * 2
    seen_bins = set()
    for seed in range(4):
        arch = space.sample(seed)
        assert space.contains(arch)[0]
        with torch.device("meta"):
            model = build_model(arch)
            raw = model(torch.zeros(1, 3, 64, 64))
        seen_bins.add(model.bins)
        assert [tuple(c.shape) for _, c in raw] == [(1, 3, 8, 8), (1, 3, 4, 4), (1, 3, 2, 2)]
        assert all(b.shape[1] == 4 * model.bins for b, _ in raw)
    assert seen_bins <= {1, 17}
