"""The Python API the notebooks use to inspect a search run: the same functions the CLI calls, wrapped
for pandas and matplotlib, so no logic lives in notebook cells.

    run = open_run()                    # NASEARCH_RUN, default runs/quickstart
    run.trials()                        # every trial as a DataFrame
    run.front(); run.suite()            # the Pareto front, the delivered suite
    fig = draw_front(run); fig = draw_hypervolume(run)
    summary(run.arch(12)); compare_archs(run.arch(3), run.arch(12))
    latency_breakdown(run.arch(12), db="latency_db/cpu.db")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasearch import yamlio
from nasearch.envpaths import env_path
from nasearch.errors import InputError
from nasearch.latency.db import LatencyDB
from nasearch.latency.stats import QUICK, TimingPolicy
from nasearch.plotting import pyplot
from nasearch.search.plot import draw_front as _draw
from nasearch.space import Architecture
from nasearch.space.summary import compare, summarize

RUN_ENV = "NASEARCH_RUN"
DEFAULT_RUN = Path("runs/quickstart")


def run_dir_from_env() -> Path:
    return env_path(RUN_ENV, DEFAULT_RUN)


@dataclass
class Run:
    """A search run directory opened through its Optuna study (as `nasearch pareto` does)."""

    dir: Path
    study: Any
    results: Any

    def trials(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in self.results.rows])

    def front(self) -> pd.DataFrame:
        from nasearch.search.results import front_doc

        return pd.DataFrame(front_doc(self.results, self.dir))

    def suite(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "rank": i,
                    "target_ms": target,
                    "trial": e.trial,
                    "name": e.arch_name,
                    "latency_ms": e.latency_ms,
                    "accuracy": e.accuracy,
                    "params": e.params,
                    "gflops": e.gflops,
                }
                for i, (e, target) in enumerate(self.results.suite, 1)
            ]
        )

    def presets(self) -> pd.DataFrame:
        """Each preset against the best model the search found at or below its latency (a proxy figure:
        the search's accuracy signal, one evaluation each, no interval), as `nasearch search` prints it."""
        from nasearch.search.results import preset_comparison

        rows = []
        for p in preset_comparison(self.results.rows):
            best = p["best_found"] or {}
            rows.append(
                {
                    "preset": p["preset"],
                    "latency_ms": p["latency_ms"],
                    "rung": p["rung"],
                    "accuracy_kind": p["accuracy_kind"],
                    "accuracy": p["accuracy"],
                    "best_found_trial": best.get("trial"),
                    "best_found_latency_ms": best.get("latency_ms"),
                    "best_found_accuracy": best.get("accuracy"),
                    "gain (proxy)": p["gain"],
                    "status": p["status"],
                }
            )
        return pd.DataFrame(rows)

    def hypervolume(self) -> pd.DataFrame:
        hv = pd.DataFrame(
            {"trial": [r["trial"] for r in self.results.rows], "hypervolume_screen": self.results.hv_screen}
        )
        if self.results.hv_final:
            hv["hypervolume_final"] = self.results.hv_final
        return hv

    def arch(self, trial: int) -> Architecture:
        """The architecture a trial evaluated."""
        for row in self.results.rows:
            if row["trial"] == trial and row.get("_yaml"):
                return Architecture.from_dict(yamlio.loads(row["_yaml"]), f"{self.dir}#trial{trial}")
        raise InputError(self.dir, f"trial {trial}", "a trial that evaluated an architecture", "none")

    def suite_archs(self) -> list[Architecture]:
        return [self.arch(e.trial) for e, _ in self.results.suite]


def open_run(run_dir: str | Path | None = None) -> Run:
    from nasearch.search.results import collect
    from nasearch.search.study import RunInfo, load_study, quiet_optuna

    quiet_optuna()
    path = Path(run_dir) if run_dir is not None else run_dir_from_env()
    info = RunInfo.load(path)
    study = load_study(info.storage, info.study_name, readonly=True)  # reading a run never writes to it
    return Run(path, study, collect(study))


def draw_front(run: Run):
    """The run's Pareto plot (every trial, the front, presets labelled, the suite's latency targets)."""
    return _draw(run.results)


def draw_hypervolume(run: Run):
    plt = pyplot()

    hv = run.hypervolume()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for col in hv.columns[1:]:
        ax.plot(hv["trial"], hv[col], label=col.replace("hypervolume_", ""))
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def summary(arch: Architecture) -> pd.DataFrame:
    """Stage by stage: block type, depth, width and parameters."""
    return pd.DataFrame(summarize(arch)).astype(object).fillna("")


def compare_archs(a: Architecture, b: Architecture) -> pd.DataFrame:
    return pd.DataFrame(compare(a, b)).astype(object).fillna("")


def latency_breakdown(
    arch: Architecture, db: str | Path, imgsz: int | None = None, threads: int = 1, quick: bool = True
) -> pd.DataFrame:
    """This machine's ONNX Runtime latency of `arch` block by block, from a latency database.

    Blocks the database lacks are measured now and stored (as `nasearch latency predict --missing
    measure` does), so every figure in the table is a measurement; the predicted total is added last.
    """
    from nasearch.latency.backend import get_backend
    from nasearch.latency.predict import predict_from_db
    from nasearch.latency.units import arch_units

    size = imgsz or arch.data["imgsz"]
    sized = arch if size == arch.data["imgsz"] else arch.with_overrides(imgsz=size)
    backend = get_backend("onnxruntime", "fp32", 1, threads, QUICK if quick else TimingPolicy())
    fp = backend.fingerprint()
    with LatencyDB(Path(db)) as database:
        total = predict_from_db(database, fp, sized, size, backend, "measure")
        _, units = arch_units(sized, size, fp.batch)
        stored = database.units(fp.id, [u.signature for u in units])
    rows = [
        {
            "unit": u.name,
            "kind": u.kind,
            "block": u.block_type,
            "median_ms": stored[u.signature].median_ms,
            "source": "measured",
        }
        for u in units
    ]
    rows.append(
        {
            "unit": "whole network (blocks + fitted overhead)",
            "kind": "total",
            "block": "",
            "median_ms": total["predicted_ms"],
            "source": f"predicted ({total['method']})",
        }
    )
    return pd.DataFrame(rows)


DATA_ENV = "NASEARCH_DATA"


DATASETS = ("synthetic", "trees")


def deploy_data(imgsz: int, images: int = 240, seed: int = 0, dataset: str = "synthetic") -> Path:
    """The dataset deployment uses: `NASEARCH_DATA`, else `dataset` — the synthetic set or the trees set
    (`nasearch data trees`, 128 px tiles) — written under runs/data on first use."""
    if (chosen := env_path(DATA_ENV)) is not None:
        return chosen
    if dataset == "trees":
        from nasearch.data.trees import VERSION, ensure_trees

        return ensure_trees(Path("runs/data") / f"trees-{VERSION}-tile128", tile=128)
    if dataset != "synthetic":
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    from nasearch.data.synth import ensure_synthetic

    return ensure_synthetic(Path("runs/data") / f"synth-{images}-{imgsz}-{seed}", images, imgsz, seed)


def trained_checkpoint(
    run: Run, arch: Architecture, data: Path, epochs: int = 3, batch: int = 16, threads: int | None = None
) -> Path:
    """`best.pt` of the architecture under RUN_DIR/train/, training it briefly first when there is none."""
    from nasearch.train.trainer import TrainConfig, Trainer

    out = run.dir / "train" / arch.hash
    best = out / "best.pt"
    if best.is_file():
        return best
    config = TrainConfig(
        epochs=epochs,
        imgsz=arch.data["imgsz"],
        batch=batch,
        workers=0,
        close_mosaic=min(1, epochs),
        threads=threads,
        warmup_epochs=min(1.0, epochs / 3),
    )
    Trainer(arch.with_overrides(nc=_dataset_classes(data)), str(data), out, config).fit()
    return best


def _dataset_classes(data: Path) -> int:
    from nasearch.data.resolve import load_split

    return load_split(str(data), "val").nc


def export_member(ckpt: Path, out: Path, formats: str = "yaml,torch,onnx") -> dict[str, Any]:
    """`nasearch export CKPT --format …`: writes the files and checks every ONNX against PyTorch."""
    from nasearch.app.export import ExportOptions, export, parse_formats, resolve_source

    return export(resolve_source(str(ckpt), None), ExportOptions(formats=parse_formats(formats), out=out))


def quantize_member(
    ckpt: Path,
    data: Path,
    out: Path,
    mode: str = "ptq",
    max_drop: float = 0.5,
    target: str = "cpu",
    calib_images: int = 64,
) -> dict[str, Any]:
    """`nasearch quantize CKPT --mode …`: float and INT8 mAP and measured ONNX Runtime latency."""
    from nasearch.app.quantize import QuantizeOptions, run_quantize

    opts = QuantizeOptions(
        mode=mode, data=str(data), out=out, max_drop=max_drop, target=target, calib_images=calib_images, workers=0
    )
    return run_quantize(ckpt, opts)


def float_vs_int8(report: dict[str, Any]) -> pd.DataFrame:
    """The quantize report as a two-row table (float, INT8)."""
    return pd.DataFrame(
        [
            {"model": "float", "mAP50-95": report["map_float"], "latency_ms (measured)": report["latency_float_ms"]},
            {
                "model": f"INT8 ({report['mode']})",
                "mAP50-95": report["map_int8"],
                "latency_ms (measured)": report["latency_int8_ms"],
            },
        ]
    ).set_index("model")
