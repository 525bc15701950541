"""The nano space: the main space with smaller widths, so a CPU search can reach nano presets' latencies."""

from __future__ import annotations

from nasearch.nn.inspect import model_size
from nasearch.search.candidate import SearchContext
from nasearch.search.experiment import load_experiment
from nasearch.space import build_model, load_space
from tests.conftest import ROOT, SPACES
from tests.fixtures import benchmark_script


class Smallest:
    """Every decision at its first option or its low end: the space's smallest widths and depths."""

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        return 0

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return low

    def real(self, name: str, low: float, high: float, step: float) -> float:
        return low


def test_the_nano_space_holds_the_main_space_and_yolo_nas():
    nano, main = load_space(SPACES / "yolo_nas_nano_space.yaml"), load_space(SPACES / "yolo_nas_space.yaml")
    assert {"yolo_nas_s", "yolo_nas_m", "yolo_nas_l"} <= set(nano.presets_inside())
    for seed in range(12):
        inside, why = nano.contains(main.sample(seed))
        assert inside, why


def test_its_small_end_is_below_the_nano_presets_as_the_trees_search_scales_them():
    ctx = SearchContext.create(load_experiment(ROOT / "experiments" / "trees_cpu.yaml"))
    assert ctx.space.name == "yolo_nas_nano_space"
    payoff = benchmark_script("payoff")

    def gflops(arch) -> float:
        return model_size(build_model(arch), int(arch.data["imgsz"])).gflops

    smallest = gflops(ctx.architecture(ctx.space.resolve(Smallest()), "smallest"))
    assert smallest < gflops(payoff.scaled_preset(ctx, "yolov6n")) < gflops(payoff.scaled_preset(ctx, "yolov8n"))
