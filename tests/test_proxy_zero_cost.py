"""Zen-score, NASWOT and SynFlow: the properties that define them, on tiny detectors and hand-built nets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasearch.nn.common import ConvBNAct
from nasearch.nn.inspect import randomize_bn
from nasearch.proxy.naswot import code_kernel, kernel_score, naswot_kernel, naswot_score
from nasearch.proxy.scale import scale_arch
from nasearch.proxy.synflow import layer_flows, synflow_score
from nasearch.proxy.zen import zen_score
from nasearch.space import Architecture, build_model, load_space
from tests.conftest import SPACES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


SHAPE = (4, 3, 64, 64)


@pytest.fixture(scope="module")
def tiny() -> Architecture:
    return load_space(SPACES / "tiny_space.yaml").sample(0)


def widened(arch: Architecture, factor: int) -> Architecture:
    return scale_arch(arch, width=factor)


def fresh(arch: Architecture, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch)


# -- Zen-score ------------------------------------------------------------------------------------------
def test_zen_is_deterministic_and_stable_across_seeds(tiny: Architecture) -> None:
    model = fresh(tiny)
    a, b = zen_score(model, SHAPE, seed=1), zen_score(model, SHAPE, seed=1)
    assert a == b
    others = [zen_score(model, SHAPE, seed=s) for s in (2, 3)]
    assert all(v != a for v in others)
    assert max(abs(v - a) for v in others) < 0.05 * abs(a)  # a property of the architecture, not the draw


def test_zen_ignores_the_weights_the_model_carries(tiny: Architecture) -> None:
    model = fresh(tiny)
    before = zen_score(model, SHAPE, seed=0)
    randomize_bn(model, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(7.0)
    assert zen_score(model, SHAPE, seed=0) == pytest.approx(before, rel=1e-6)


def test_zen_bn_term_is_the_log_std_the_first_bn_removes() -> None:
    """N(0,1) weights and inputs: a k×k conv over C_in channels has variance ≈ C_in·k² (MAE-DET's term)."""
    from nasearch.proxy import zen

    layer = ConvBNAct(3, 16, 3, 2)
    zen.gaussian_init(layer, torch.Generator().manual_seed(0))
    logs, handles = zen._bn_log_scales(layer)
    layer.train()(torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    for h in handles:
        h.remove()
    assert logs[0] == pytest.approx(0.5 * math.log(3 * 9), abs=0.05)  # borders (zero padding) cost a little


def test_zen_grows_with_width(tiny: Architecture) -> None:
    assert zen_score(fresh(widened(tiny, 2)), SHAPE) > zen_score(fresh(tiny), SHAPE) + 1.0


# -- NASWOT ---------------------------------------------------------------------------------------------
def test_code_kernel_counts_agreements() -> None:
    g = torch.Generator().manual_seed(0)
    codes = torch.rand(5, 3000, generator=g) > 0.5
    kernel = code_kernel(codes)
    brute = torch.tensor([[float((ci == cj).sum()) for cj in codes] for ci in codes], dtype=torch.float64)
    assert torch.equal(kernel, brute)
    assert torch.all(kernel.diagonal() == 3000)


def test_naswot_kernel_is_psd_and_the_model_is_untouched(tiny: Architecture) -> None:
    model = fresh(tiny)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kernel = naswot_kernel(model, (8, 3, 64, 64), seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN buffers included
    assert torch.allclose(kernel, kernel.T)
    eig = torch.linalg.eigvalsh(kernel)
    assert eig.min() > -1e-9 * eig.max()
    assert naswot_score(model, (8, 3, 64, 64), seed=0) == pytest.approx(float(torch.logdet(kernel)), rel=1e-9)


def test_naswot_score_grows_with_distinct_codes() -> None:
    n = 1000
    base = torch.zeros(n, dtype=torch.bool)
    scores = []
    for distance in (0, 1, 10, 100, 500):
        other = base.clone()
        other[:distance] = True
        scores.append(kernel_score(code_kernel(torch.stack([base, other]))))
    assert scores[0] == -math.inf  # identical codes: the kernel is singular
    assert scores[1:] == sorted(scores[1:]) and len(set(scores[1:])) == 4
    # det of [[N, N−d], [N−d, N]] = N² − (N−d)²
    assert scores[2] == pytest.approx(math.log(n * n - (n - 10) ** 2), rel=1e-12)


def test_naswot_is_deterministic_for_a_seed(tiny: Architecture) -> None:
    model = fresh(tiny)
    shape = (8, 3, 64, 64)
    assert naswot_score(model, shape, seed=4) == naswot_score(model, shape, seed=4)
    assert naswot_score(model, shape, seed=4) != naswot_score(model, shape, seed=5)


# -- SynFlow --------------------------------------------------------------------------------------------
def test_synflow_conserves_flow_layer_by_layer() -> None:
    """Tanaka et al.'s conservation law: in a bias-free ReLU chain every layer carries the same flow R."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, 2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 4, 1, bias=False),
    )
    flows = layer_flows(net, (1, 3, 16, 16))
    with torch.no_grad():
        plain = nn.Sequential(*[m for m in net if not isinstance(m, nn.BatchNorm2d)]).double()
        for p in plain.parameters():
            p.abs_()
        total = float(plain(torch.ones(1, 3, 16, 16, dtype=torch.float64)).sum())
    assert len(flows) == 3
    assert list(flows.values()) == pytest.approx([total] * 3, rel=1e-9)


def test_synflow_ignores_weight_signs_and_bn(tiny: Architecture) -> None:
    model = fresh(tiny)
    before = synflow_score(model, (1, 3, 64, 64))
    randomize_bn(model, seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0))
    assert synflow_score(model, (1, 3, 64, 64)) == pytest.approx(before, rel=1e-12)


def test_synflow_grows_with_width(tiny: Architecture) -> None:
    assert synflow_score(fresh(widened(tiny, 2)), (1, 3, 64, 64)) > synflow_score(fresh(tiny), (1, 3, 64, 64))
