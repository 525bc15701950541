"""MAE-DET entropy score: exact closed-form values on hand-built networks, and its width/depth behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.detector import Detector
from nasearch.nn.inspect import randomize_bn
from nasearch.proxy.entropy import STAGE_WEIGHTS, entropy_score, stage_entropies, stage_log_std
from nasearch.space import build_model, load_space
from tests.conftest import SPACES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


class NullHead(nn.Module):
    """The entropy score never reaches the neck or head; they only complete the Detector."""

    bins = 1

    def forward(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(f[:, :4], f[:, :1]) for f in feats]


class Residual(nn.Module):
    def __init__(self, c: int, k: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(c, c, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class TwoBranchConcat(nn.Module):
    """cat(1×1 conv, 3×3 conv) of the same input: channels with different second moments side by side."""

    def __init__(self, c_in: int, c_each: int) -> None:
        super().__init__()
        self.a = ConvBNAct(c_in, c_each, 1)
        self.b = ConvBNAct(c_in, c_each, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1)


def chain_detector(widths: list[int], k: int = 3, extra: dict[int, nn.Module] | None = None) -> Detector:
    """Stem + four stride-2 Conv-BN-ReLU stages of the given widths; `extra[i]` appended to stage i."""
    stem = ConvBNAct(3, widths[0], k, 2, act="relu")
    stages = nn.ModuleList()
    for i in range(4):
        layers: list[nn.Module] = [ConvBNAct(widths[i], widths[i + 1], k, 2, act="relu")]
        if extra and i in extra:
            layers.append(extra[i])
        stages.append(nn.Sequential(*layers))
    return Detector(stem, stages, nn.Identity(), nn.Identity(), NullHead(), nc=1)


def closed_form(widths: list[int], k: int = 3) -> list[float]:
    """Hand computation: each conv adds ½·log(C_in·k²) to the log std; entropy adds log(C_out)."""
    log_std, c_in, out = 0.0, 3, []
    for c in widths:
        log_std += 0.5 * math.log(c_in * k * k)
        out.append(log_std + math.log(c))
        c_in = c
    return out


def test_exact_value_on_a_hand_built_chain() -> None:
    widths = [8, 16, 24, 32, 48]
    model = chain_detector(widths)
    expected = closed_form(widths)
    assert stage_entropies(model) == pytest.approx(expected, rel=1e-12)
    assert entropy_score(model) == pytest.approx(
        sum(w * e for w, e in zip(STAGE_WEIGHTS, expected, strict=True)), rel=1e-12
    )
    # e.g. the C3 entropy by hand: ½·log(3·9) + ½·log(8·9) + ½·log(16·9) + log(24)
    c3 = 0.5 * math.log(27) + 0.5 * math.log(72) + 0.5 * math.log(144) + math.log(24)
    assert stage_entropies(model)[2] == pytest.approx(c3, rel=1e-12)


def test_depth_adds_exactly_half_log_cin_k2_to_every_later_stage() -> None:
    widths = [8, 16, 24, 32, 48]
    base = chain_detector(widths)
    deeper = chain_detector(widths, extra={0: ConvBNAct(16, 16, 3)})  # one more 3×3 conv at stride 4
    gain = 0.5 * math.log(16 * 9)
    diff = [b - a for a, b in zip(stage_entropies(base), stage_entropies(deeper), strict=True)]
    assert diff == pytest.approx([0.0, gain, gain, gain, gain], abs=1e-9)
    assert entropy_score(deeper) - entropy_score(base) == pytest.approx((1 + 1 + 6) * gain, rel=1e-9)


def test_width_of_the_last_stage_adds_log_of_the_channel_ratio() -> None:
    narrow, wide = chain_detector([8, 16, 24, 32, 48]), chain_detector([8, 16, 24, 32, 96])
    assert entropy_score(wide) - entropy_score(narrow) == pytest.approx(6 * math.log(2), rel=1e-9)
    widened_input = chain_detector([8, 16, 24, 64, 48])  # a wider C4 also feeds a wider fan-in to C5
    gain_c4 = math.log(2)
    gain_c5 = 0.5 * math.log(2)
    expected = gain_c4 + 6 * gain_c5
    assert entropy_score(widened_input) - entropy_score(narrow) == pytest.approx(expected, rel=1e-9)


def test_residual_and_concat_follow_the_variance_rules() -> None:
    widths = [8, 16, 24, 32, 48]
    res = chain_detector(widths, extra={0: Residual(16, 3)})
    base_log_std = [v for v, _ in stage_log_std(chain_detector(widths))]
    # x + conv(x): independent branches, so second moments add: m·(1 + C·k²)
    assert stage_log_std(res)[1][0] - base_log_std[1] == pytest.approx(0.5 * math.log(1 + 16 * 9), rel=1e-9)
    cat = chain_detector([8, 16, 24, 32, 48], extra={0: TwoBranchConcat(16, 8)})
    # half the channels carry m·16·1, half m·16·9: the feature map's second moment is their mean
    log_std, channels = stage_log_std(cat)[1]
    assert channels == 16
    assert log_std - base_log_std[1] == pytest.approx(0.5 * math.log((16 * 1 + 16 * 9) / 2), rel=1e-9)


def test_depends_on_the_architecture_only() -> None:
    space = load_space(SPACES / "tiny_space.yaml")
    torch.manual_seed(0)
    model = build_model(space.sample(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    score = entropy_score(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    randomize_bn(model, seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-3.0)
    assert entropy_score(model) == pytest.approx(score, rel=1e-12)


def test_grows_with_width_and_depth_on_real_blocks() -> None:
    space = load_space(SPACES / "tiny_space.yaml")
    arch = space.sample(0).data
    narrow = {**arch, "backbone": {**arch["backbone"], "stem": {**arch["backbone"]["stem"], "out": 8}}}
    wide = {**arch, "backbone": {**arch["backbone"], "stem": {**arch["backbone"]["stem"], "out": 16}}}
    stages = [dict(s) for s in arch["backbone"]["stages"]]
    stages[1]["blocks"] = 2
    deep = {**arch, "backbone": {**arch["backbone"], "stages": stages}}
    shallow_stages = [dict(s) for s in arch["backbone"]["stages"]]
    shallow_stages[1]["blocks"] = 1
    shallow = {**arch, "backbone": {**arch["backbone"], "stages": shallow_stages}}
    score = {
        name: entropy_score(build_model(space.to_arch(d)))
        for name, d in (("narrow", narrow), ("wide", wide), ("deep", deep), ("shallow", shallow))
    }
    assert score["wide"] > score["narrow"]
    assert score["deep"] > score["shallow"]
