"""The proxy registry (what the search calls by name), the baselines, and the CPU scale-down transform."""

from __future__ import annotations

import math

import pytest
import torch

from nasearch.errors import InputError
from nasearch.nn.inspect import count_flops, count_params, fused_copy
from nasearch.proxy import registry
from nasearch.proxy.result import ProxyResult
from nasearch.proxy.scale import scale_arch
from nasearch.space import Architecture, build_model, load_arch, load_space
from tests.conftest import PRESETS, SPACES

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def tiny() -> Architecture:
    return load_space(SPACES / "tiny_space.yaml").sample(0)


ZERO_COST = {"entropy": {}, "zen": {"batch": 2, "repeats": 1}, "naswot": {"batch": 4}, "synflow": {}}


def test_every_proxy_is_registered() -> None:
    assert set(registry.names()) == {"entropy", "zen", "naswot", "synflow", "params", "flops", "short_train"}
    assert registry.get("short_train").needs_data and not registry.get("zen").needs_data
    assert registry.get("zen").budget_keys == {"batch": 4, "repeats": 2}


@pytest.mark.parametrize("name", sorted(ZERO_COST))
def test_zero_cost_proxies_score_architectures_deterministically(tiny: Architecture, name: str) -> None:
    first = registry.score(name, tiny, imgsz=64, seed=3, **ZERO_COST[name])
    again = registry.score(name, tiny, imgsz=64, seed=3, **ZERO_COST[name])
    assert math.isfinite(first.value) and first.value == again.value
    assert first.higher_is_better and first.kind == registry.get(name).kind and first.seconds > 0
    torch.manual_seed(11)
    build_model(tiny)  # the proxies leave the global RNG alone: a caller's seeded run is not disturbed
    expected = torch.rand(1)
    torch.manual_seed(11)
    build_model(tiny)
    registry.score(name, tiny, imgsz=64, seed=3, **ZERO_COST[name])
    assert torch.equal(torch.rand(1), expected)


def test_baselines_match_the_model_counters(tiny: Architecture) -> None:
    model = build_model(tiny)
    assert registry.score("params", tiny).value == pytest.approx(count_params(model) / 1e6)
    gflops = count_flops(fused_copy(model), 96) / 1e9
    assert registry.score("flops", tiny, imgsz=96).value == pytest.approx(gflops)
    more_classes = registry.score("params", tiny, nc=40).value
    assert more_classes > registry.score("params", tiny).value  # the class branch grows with nc


def test_bad_input_is_an_input_error(tiny: Architecture) -> None:
    with pytest.raises(InputError, match="proxy"):
        registry.get("jacob_cov")
    with pytest.raises(InputError, match="budget key of zen"):
        registry.score("zen", tiny, imgsz=64, epochs=3)
    with pytest.raises(InputError, match="multiple of 32"):
        registry.score("synflow", tiny, imgsz=100)
    with pytest.raises(InputError, match="batch"):
        registry.score("naswot", tiny, imgsz=64, batch=1)
    with pytest.raises(InputError, match="dataset"):
        registry.score("short_train", tiny, imgsz=64)


def test_the_search_calls_proxies_by_name(tiny: Architecture) -> None:
    """The search has no proxies of its own: it validates and scores through this registry."""
    from nasearch.search.experiment import ProxySpec
    from nasearch.search.objectives import EvalContext, check_proxy_spec, score_accuracy

    known = set(registry.names())
    assert {"entropy", "zen", "naswot", "synflow", "short_train"} <= known
    assert frozenset(registry.get("zen").budget_keys) == frozenset({"batch", "repeats"})
    result = score_accuracy(ProxySpec(proxy="synflow"), tiny, EvalContext(imgsz=64, nc=4, seed=0))
    assert result.value == registry.score("synflow", tiny, imgsz=64, seed=0, nc=4).value
    assert type(result) is ProxyResult  # one result type for the CLI and the search
    check_proxy_spec(ProxySpec(proxy="zen", budget={"batch": 2}), "exp.yaml", "screen")
    with pytest.raises(InputError, match=r"exp.yaml.*screen.budget.epochs.*budget key of zen"):
        check_proxy_spec(ProxySpec(proxy="zen", budget={"epochs": 2}), "exp.yaml", "screen")
    with pytest.raises(InputError, match=r"screen.proxy.*registered proxy"):
        check_proxy_spec(ProxySpec(proxy="jacob_cov"), "exp.yaml", "screen")


def test_a_registered_proxy_is_seen_by_the_search(tiny: Architecture) -> None:
    from nasearch.search.experiment import ProxySpec
    from nasearch.search.objectives import EvalContext, check_proxy_spec, score_accuracy

    def depth(
        arch: Architecture, imgsz: int | None = None, seed: int = 0, nc: int | None = None, scale: int = 1
    ) -> ProxyResult:
        """Blocks in the backbone."""
        return ProxyResult(float(scale * sum(s["blocks"] for s in arch.data["backbone"]["stages"])), "blocks")

    registry.register(registry.Proxy("depth", "blocks", depth, True))
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register(registry.Proxy("depth", "blocks", depth, True))
        spec = ProxySpec(proxy="depth", budget={"scale": 2})
        check_proxy_spec(spec, "exp.yaml", "screen")
        blocks = sum(s["blocks"] for s in tiny.data["backbone"]["stages"])
        assert score_accuracy(spec, tiny, EvalContext(imgsz=64, nc=4, seed=0)).value == 2 * blocks
    finally:
        registry.unregister("depth")
    assert "depth" not in registry.names()
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("zen")


# -- scale transform -------------------------------------------------------------------------------------
def test_scale_arch_on_yolo_nas_s() -> None:
    small = scale_arch(load_arch(PRESETS / "yolo_nas_s.yaml"), width=0.25, depth=0.5, nc=10, imgsz=128)
    d = small.data
    assert (d["nc"], d["imgsz"]) == (10, 128)
    assert d["backbone"]["stem"]["out"] == 16  # 48 × 0.25 = 12 → nearest multiple of 8 (ties up)
    assert [s["out"] for s in d["backbone"]["stages"]] == [24, 48, 96, 192]
    assert [s["hidden"] for s in d["backbone"]["stages"]] == [8, 16, 24, 48]
    assert [s["blocks"] for s in d["backbone"]["stages"]] == [1, 2, 3, 1]  # 2, 3, 5, 2 × 0.5, rounded half up
    assert d["head"]["width_mult"] == pytest.approx(0.125)
    _, scores = build_model(small).eval()(torch.zeros(1, 3, 128, 128))
    assert scores.shape[-1] == 10
    wider_head = scale_arch(load_arch(PRESETS / "yolo_nas_s.yaml"), width=0.25, depth=0.5, head_width=0.5)
    assert wider_head.data["head"]["width_mult"] == pytest.approx(0.25)
    assert wider_head.data["backbone"] == d["backbone"] and wider_head.data["neck"] == d["neck"]


def test_scale_arch_keeps_the_space_constraints_and_identity() -> None:
    space = load_space(SPACES / "yolo_nas_space.yaml")
    for seed in range(8):
        arch = space.sample(seed)
        assert scale_arch(arch).hash == arch.hash
        d = scale_arch(arch, width=0.25, depth=0.5).data
        outs = [s["out"] for s in d["backbone"]["stages"]]
        assert outs == sorted(outs)
        assert all(s.get("hidden") is None or s["hidden"] <= s["out"] for s in d["backbone"]["stages"])
    with pytest.raises(ValueError):
        scale_arch(space.sample(0), width=0)
