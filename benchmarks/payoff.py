"""Payoff: do the models a search delivers beat the published presets once both are trained the same way?

For each data set (`--data trees`: `experiments/trees_cpu.yaml`; `--data synth`: `experiments/quickstart.yaml`)
the benchmark runs in stages, each cached in OUT (atomic writes, so a killed run resumes where it stopped):

1. targets: the presets (`--presets`, default yolov8n, yolov6n, yolo_nas_s) scaled exactly as the search scales
   every candidate (`SearchContext.architecture`: the experiment's width/depth/head scale, resolution, classes),
   timed with the search's own latency evaluator; each suite target is 1.02 × a preset's latency.
2. search: the committed experiment with `suite: {latency_targets_ms: [those targets]}`, its latency limit
   lowered to 1.5 x the largest target (and `--search-trials`), written to OUT/experiment.yaml and run with
   `nasearch search … --resume`; the suite is its delivered models. `--new-search` (shard 0) moves an earlier
   search's products to OUT/superseded/ when only the experiment changed, keeping the presets' trainings.
3. train: every suite model and every preset, one recipe (`nasearch train`: same epochs, schedule,
   augmentation, image size), one run per seed; each run keeps its per-epoch validation curve (`curve.json`).
4. latency: each model's fused deploy form on ONNX Runtime, 1 thread, wall clock, in interleaved rounds across
   models (the median over rounds), through the project's latency backend. It runs in shard 0 right after the
   search, before any training: the same machine and the same idle spell as the targets and the search (a run
   resumed across sessions may end its trainings on another CPU), and latency does not depend on the weights.
5. report: a table (model, params, GFLOPs, latency, final mAP50-95 mean ± sd over seeds, the paired gain over
   the preset at the same or higher latency with its 95% interval), the claim per preset (the suite model of
   highest mean mAP at ≤ 1.02 × the preset's latency; gain paired by seed, `nasearch.stats` bootstrap;
   "beats" only when the interval lies above zero), a plot of mAP against latency and one of the curves.

`--shard K/N` gives this process the training runs i (models × seeds, the presets' first, in a fixed order)
with i % N == K. Nothing trains while anything is timed: the targets, the search and the latency rounds run in
shard 0 while the other shards wait for the model list and its finished latency rounds; the shard that finishes
the last training writes the report.
`--report` rebuilds the tables, plots and OUT/payoff.json from the cache alone.

    python benchmarks/payoff.py --data trees --shard 0/2     # and, beside it, --shard 1/2
    python benchmarks/payoff.py --data trees --report
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.readme_sections import write_section  # noqa: E402
from nasearch import atomic, yamlio  # noqa: E402
from nasearch import stats as protocol  # noqa: E402
from nasearch.errors import InputError, exit_bad_input  # noqa: E402

EXPERIMENTS = {"trees": "trees_cpu.yaml", "synth": "quickstart.yaml"}
PRESETS = ("yolov8n", "yolov6n", "yolo_nas_s")
FACTOR = 1.02  # a suite model competes with a preset at up to this multiple of its latency
LIMIT_HEADROOM = 1.5  # the search's latency limit over the largest target: the synthetic search once timed
# the scaled yolo_nas_s at 1.38 x its latency in the targets' rounds (1.81 against 1.31 ms, a noisy VNNI machine)
RECIPE = ("epochs", "batch", "lr", "close_mosaic", "nbs", "ema_decay", "ema_tau")  # the one training recipe
Log = Callable[[str], None]


# -- settings and cache -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(EXPERIMENTS), required=True)
    p.add_argument("--experiment", default=None, help="experiment file (default: the committed one for --data)")
    p.add_argument("--out", default=None, help="cache and run folder (default runs/payoff_DATA)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=60, help="epochs of every training (one recipe for all)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW peak learning rate (warm-up + cosine)")
    p.add_argument("--close-mosaic", type=int, default=10, help="last epochs without mosaic")
    p.add_argument(
        "--nbs", type=int, default=8, help="nominal batch: gradients accumulate up to it (8: one step per batch)"
    )
    p.add_argument("--ema-decay", type=float, default=0.997, help="EMA decay of the weights (validated and kept)")
    p.add_argument("--ema-tau", type=float, default=300.0, help="optimizer steps over which the EMA decay ramps up")
    p.add_argument("--presets", nargs="+", default=list(PRESETS))
    p.add_argument("--search-trials", type=int, default=None, help="override the experiment's trials")
    p.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    p.add_argument("--shard", default="0/1", help="K/N: this process trains the runs i with i %% N == K")
    p.add_argument(
        "--wait", type=float, default=7200, help="seconds a shard K > 0 waits for shard 0's search and latency rounds"
    )
    p.add_argument("--readme", default=str(ROOT / "benchmarks" / "README.md"))
    p.add_argument("--figures", default=str(ROOT / "benchmarks"), help="folder of payoff_DATA*.png")
    p.add_argument("--report", action="store_true", help="only rebuild the tables and plots from the cache")
    p.add_argument(
        "--new-search",
        action="store_true",
        help="shard 0, when only the experiment or --search-trials changed: move the old search's products to "
        "OUT/superseded/ and search again; the targets and the presets' trainings are kept",
    )
    a = p.parse_args(argv)
    a.experiment = a.experiment or str(ROOT / "experiments" / EXPERIMENTS[a.data])
    a.out = Path(a.out or ROOT / "runs" / f"payoff_{a.data}")
    k, _, n = a.shard.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        p.error(f"--shard: expected K/N with 0 <= K < N, found {a.shard!r}")
    a.shard_k, a.shard_n = int(k), int(n)
    if a.new_search and a.shard_k != 0:
        p.error("--new-search: only shard 0 searches (start the other shards after it)")
    return a


def settings(a: argparse.Namespace) -> dict[str, Any]:
    """What the cached measurements depend on (seeds and rounds may grow: each run is cached on its own)."""
    return {
        "data": a.data,
        "experiment": checkout_relative(a.experiment),
        "experiment_sha256": hashlib.sha256(Path(a.experiment).read_bytes()).hexdigest()[:16],
        "search_trials": a.search_trials,
        **{key: getattr(a, key) for key in RECIPE},
        "presets": list(a.presets),
        "factor": FACTOR,
    }


def checkout_relative(path: str | Path) -> str:
    """A path inside this checkout relative to its root, so a cache survives moving or cloning the checkout."""
    resolved = Path(os.path.abspath(path))
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def write_json(path: Path, doc: Any) -> None:
    atomic.write_text(path, json.dumps(doc, indent=1) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


SEARCH_SETTINGS = ("experiment", "experiment_sha256", "search_trials")  # what only the search depends on
# what a new search makes stale: its own products, the table, and payoff_check's runs and rounds against it
SEARCH_PRODUCTS = ("experiment.yaml", "search", "models.json", "latency.json", "payoff.json", "check")


def check_settings(a: argparse.Namespace, current: dict[str, Any], log: Log) -> None:
    """The cache's settings must be this run's; with --new-search a changed search supersedes the old one."""
    out = a.out
    stored = read_json(out / "settings.json")
    if stored is not None and stored != current:
        diff = sorted(k for k in current if stored.get(k) != current[k])
        if not (a.new_search and set(diff) <= set(SEARCH_SETTINGS)):
            expected = "the cached run's values (another --out; --new-search when only the search changed)"
            exit_bad_input(InputError(out / "settings.json", ", ".join(diff), expected, "others"))
        supersede_search(out, stored, current, log)
    if stored != current:
        write_json(out / "settings.json", current)


def supersede_search(out: Path, stored: dict[str, Any], current: dict[str, Any], log: Log) -> None:
    """Move the old search's products and its suite models' trainings to OUT/superseded/<old experiment hash>/.

    The targets and the presets' trainings stay: they depend on the presets, the experiment's scale, resolution
    and latency evaluator, the data and the recipe — checked here by the presets' scaled hashes — not on the
    search. Nothing is deleted."""
    targets = read_json(out / "targets.json")
    if targets is not None:
        ctx = search_context(ROOT / current["experiment"])
        changed = [n for n, p in targets["presets"].items() if scaled_preset(ctx, n).hash != p["hash"]]
        if changed:
            expected = "the same scaled presets (scale, resolution and classes unchanged)"
            exit_bad_input(InputError(ROOT / current["experiment"], "scale", expected, f"{', '.join(changed)} changed"))
    dest = out / "superseded" / f"{stored['experiment_sha256']}-trials{stored['search_trials']}"
    models = read_json(out / "models.json") or []
    moved = [out / name for name in SEARCH_PRODUCTS]
    moved += [out / "train" / m["key"] for m in models if m["kind"] == "suite"]
    moved += [out / "archs" / f"{m['key']}.yaml" for m in models if m["kind"] == "suite"]
    for path in (p for p in moved if p.exists()):
        target = dest / path.relative_to(out)
        if target.exists():
            exit_bad_input(InputError(target, "superseded", "a free place for the old search", "one already there"))
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    write_json(dest / "settings.json", stored)
    log(f"new search: the previous one ({stored['experiment']}, sha {stored['experiment_sha256']}) moved to {dest}")


# -- models: the presets scaled as the search scales candidates -------------------------------------------
def search_context(experiment: str | Path) -> Any:
    from nasearch.search.candidate import SearchContext
    from nasearch.search.experiment import load_experiment

    return SearchContext.create(load_experiment(experiment))


@dataclasses.dataclass(frozen=True)
class _Given:
    """Stands in for the space so `SearchContext.architecture` scales a given architecture (one outside the
    space) by the very code that scales every candidate."""

    arch: Any

    def to_arch(self, data: dict) -> Any:
        return self.arch


def scaled_preset(ctx: Any, name: str) -> Any:
    """The preset as the search would evaluate it: through its decisions when it lies in the space (as the
    search enqueues it), else the same scaling applied to the preset itself."""
    from nasearch.search.study import space_presets_dir
    from nasearch.space.arch import load_arch, load_presets
    from nasearch.space.decisions import ReplayChooser
    from nasearch.space.space import decision_values

    preset = load_presets(space_presets_dir(ctx.space)).get(name) or load_arch(name)
    values = decision_values(ctx.space, preset)
    if values is not None:  # the enqueued trial's path: its decisions replayed, then the search's scaling
        return ctx.architecture(ctx.space.resolve(ReplayChooser(values)), name)
    return dataclasses.replace(ctx, space=_Given(preset)).architecture({}, name)


def model_info(arch: Any) -> dict[str, Any]:
    """Params (training form) and GFLOPs (fused form) at the architecture's resolution."""
    from nasearch.nn.inspect import model_size
    from nasearch.space import build_model

    size = model_size(build_model(arch), int(arch.data["imgsz"]))
    return {"params": size.params, "gflops": round(size.gflops, 4)}


def stage_targets(a: argparse.Namespace, ctx: Any, log: Log) -> dict[str, Any]:
    """Each preset's latency by the search's own evaluator (interleaved rounds); targets = FACTOR × it.

    Targets timed on another CPU are timed again here (the old file kept under OUT/superseded/targets/): a new
    search on this machine must aim at this machine's latencies."""
    from nasearch.latency.fingerprint import cpu_name
    from nasearch.nn.inspect import fused_copy
    from nasearch.onnxio.isa import this_cpu_isa
    from nasearch.space import build_model

    path = a.out / "targets.json"
    if (doc := read_json(path)) is not None:
        if (doc.get("device"), doc.get("isa")) == (cpu_name(), this_cpu_isa()):
            return doc
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # named by content: a rename never overwrites
        kept = a.out / "superseded" / "targets" / f"targets-{doc.get('isa')}-{digest}.json"  # another file
        kept.parent.mkdir(parents=True, exist_ok=True)
        path.rename(kept)
        log(f"targets: timed on {doc.get('device')} ({doc.get('isa')}), not this CPU: timed again (old: {kept})")

    archs = {name: scaled_preset(ctx, name) for name in a.presets}
    fused = {name: fused_copy(build_model(arch)) for name, arch in archs.items()}
    rounds: dict[str, list[float]] = {name: [] for name in archs}
    method = ""
    for _ in range(3):
        for name in archs:
            result = ctx.latency.measure(fused[name])
            rounds[name].append(result.ms)
            method = result.method
    presets = {}
    for name, arch in archs.items():
        ms = statistics.median(rounds[name])
        presets[name] = {"hash": arch.hash, "name": arch.name, "search_latency_ms": ms, "rounds": rounds[name]}
        arch.save(a.out / "archs" / f"{name}.yaml")
        log(f"target: {arch.name} {ms:.3f} ms (the search's clock) -> suite target {FACTOR * ms:.3f} ms")
    doc = {
        "method": f"{method}, the search's latency evaluator, median of 3 interleaved rounds",
        "device": cpu_name(),
        "isa": this_cpu_isa(),
        "presets": presets,
        "targets_ms": [round(FACTOR * p["search_latency_ms"], 4) for p in presets.values()],
    }
    write_json(path, doc)
    return doc


def derived_experiment(a: argparse.Namespace, ctx: Any, targets: list[float]) -> Path:
    """The committed experiment with the suite aimed at the presets' latencies, its paths made absolute."""
    exp = ctx.exp
    raw = json.loads(json.dumps(exp.raw))
    raw["space"] = str(exp.space_path)
    if exp.dataset_path is not None:
        raw["dataset"]["path"] = str(exp.dataset_path)
    if exp.trees_wheel is not None:
        raw["dataset"]["trees"]["wheel"] = str(exp.trees_wheel)
    if exp.latency_db is not None:
        raw["objectives"]["latency"]["db"] = str(exp.latency_db)
    raw["suite"] = {"latency_targets_ms": targets}
    # the suite can use nothing slower than its largest target, so the search's limit sits just above it (the
    # surrogate's hypervolume is bounded there too) — with headroom, because one noisy measurement must not
    # put the preset at that target over the limit and out of the search's references
    limit = raw.setdefault("constraints", {}).get("latency_ms")
    bound = LIMIT_HEADROOM * max(targets)
    raw["constraints"]["latency_ms"] = bound if limit is None else min(limit, bound)
    if a.search_trials is not None:
        raw["trials"] = a.search_trials
    path = a.out / "experiment.yaml"
    head = f"# {Path(a.experiment).name}, its suite aimed at {FACTOR} x the presets' latencies (benchmarks/payoff.py)\n"
    atomic.write_text(path, head + yamlio.dumps(raw))
    return path


def nasearch(args: list[str]) -> dict[str, Any]:
    """Run a `nasearch` command (this checkout's code, in this process) with --json; its document."""
    from nasearch.cli.main import app

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = app([*args, "--json"], standalone_mode=False)
    if isinstance(code, int) and code != 0:
        raise SystemExit(f"error: `nasearch {' '.join(args)}` exited {code} (its message is above)")
    return json.loads(buf.getvalue())


def stage_search(a: argparse.Namespace, ctx: Any, log: Log) -> list[dict[str, Any]]:
    """Run (or resume) the search; the model list: the presets, then the suite models that are not presets."""
    path = a.out / "models.json"
    if (doc := read_json(path)) is not None:
        return doc
    from nasearch.space.arch import load_arch

    targets = stage_targets(a, ctx, log)
    exp = derived_experiment(a, ctx, targets["targets_ms"])
    run = a.out / "search"
    log(f"search: {exp} -> {run}")
    nasearch(["search", str(exp), "--out", str(run), *(["--resume"] if (run / "run.json").exists() else [])])
    summary = read_json(run / "summary.json")
    presets = targets["presets"]
    models = preset_models(targets)
    known = {p["hash"]: name for name, p in presets.items()}
    for row in summary["suite"]:
        arch = load_arch(run / row["file"])
        if arch.hash in known:
            log(f"search: suite model {row['rank']} is the preset {known[arch.hash]}")
            continue
        key = f"suite{row['rank']}"
        arch.save(a.out / "archs" / f"{key}.yaml")
        models.append(
            {
                "key": key,
                "kind": "suite",
                "name": arch.name,
                "hash": arch.hash,
                "file": f"archs/{key}.yaml",
                "trial": row["trial"],
                "target_ms": row["target_ms"],
                "search_latency_ms": row["latency_ms"],
                "search_accuracy": row["accuracy"],
                "search_accuracy_kind": row["accuracy_kind"],
            }
        )
    for m in models:
        m.update(model_info(load_arch(a.out / m["file"])))
    write_json(path, models)
    return models


def preset_models(targets: dict[str, Any]) -> list[dict[str, Any]]:
    """The presets as models to train, in the order every shard lists them."""
    return [
        {"key": name, "kind": "preset", "name": p["name"], "hash": p["hash"], "file": f"archs/{name}.yaml"}
        for name, p in targets["presets"].items()
    ]


def wait_for(a: argparse.Namespace, name: str, what: str, log: Log, ready: Callable[[Any], bool] | None = None) -> Any:
    """Shard 0's file OUT/name (once `ready` holds for it, when given), waiting up to --wait seconds."""
    path = a.out / name
    deadline = time.monotonic() + a.wait
    while (doc := read_json(path)) is None or (ready is not None and not ready(doc)):
        if time.monotonic() >= deadline:
            exit_bad_input(InputError(path, what, f"shard 0's {what} (run `--shard 0/{a.shard_n}` first)", "none"))
        log(f"shard {a.shard}: waiting for shard 0's {what} ({path})")
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
    return doc


# -- training ---------------------------------------------------------------------------------------------
def jobs(models: list[dict[str, Any]], seeds: list[int]) -> list[tuple[str, int]]:
    """Every (model, seed) training run, in the fixed order the shards split: the presets' runs first."""
    ordered = [m for m in models if m["kind"] == "preset"] + [m for m in models if m["kind"] != "preset"]
    return [(m["key"], s) for m in ordered for s in seeds]


def shard_jobs(all_jobs: list[tuple[str, int]], k: int, n: int) -> list[tuple[str, int]]:
    return [job for i, job in enumerate(all_jobs) if i % n == k]


def run_dir(out: Path, key: str, seed: int, folder: str = "train") -> Path:
    return out / folder / key / f"seed{seed}"


def train_result(out: Path, key: str, seed: int, epochs: int, folder: str = "train") -> dict[str, Any] | None:
    """The finished run's curve report (`curve.json`, written by `nasearch train` every epoch)."""
    curve = read_json(run_dir(out, key, seed, folder) / "curve.json")
    return curve if curve is not None and len(curve["curve"]) >= epochs else None


def train(
    a: argparse.Namespace, model: dict[str, Any], seed: int, imgsz: int, data: Path, log: Log, folder: str = "train"
) -> None:
    """One run of the recipe, in OUT/FOLDER/KEY/seedS (resumed from its last.pt; a finished run is kept)."""
    out = run_dir(a.out, model["key"], seed, folder)
    if (out / "arch.yaml").exists():  # a run left by another model under this key is never taken as this one's
        from nasearch.space.arch import load_arch

        if (found := load_arch(out / "arch.yaml").hash) != model["hash"]:
            expected = f"the architecture {model['hash']} of {model['key']}"
            exit_bad_input(InputError(out / "arch.yaml", "hash", expected, found))
    if train_result(a.out, model["key"], seed, a.epochs, folder) is not None:
        return
    runtime = ["--threads", "1", "--workers", "0"]
    if (out / "last.pt").exists():
        log(f"train: resuming {model['key']} seed {seed}")
        nasearch(["train", str(out / "last.pt"), "--resume", *runtime])
        return
    recipe = ["--epochs", str(a.epochs), "--imgsz", str(imgsz), "--batch", str(a.batch), "--optimizer", "adamw"]
    recipe += ["--lr0", str(a.lr), "--schedule", "cosine", "--close-mosaic", str(a.close_mosaic)]
    recipe += ["--cfg", str(recipe_file(a))]
    log(f"train: {model['key']} ({model['name']}) seed {seed}, {a.epochs} epochs")
    nasearch(
        [
            "train",
            str(a.out / model["file"]),
            "--data",
            str(data),
            *recipe,
            "--seed",
            str(seed),
            "--out",
            str(out),
            *runtime,
        ]
    )


def recipe_file(a: argparse.Namespace) -> Path:
    """The recipe's settings `nasearch train` takes from a file (`--cfg`): nominal batch and EMA."""
    path = a.out / "recipe.yaml"
    text = yamlio.dumps({"nbs": a.nbs, "ema_decay": a.ema_decay, "ema_tau": a.ema_tau})
    if not path.exists() or path.read_text() != text:
        atomic.write_text(path, text)
    return path


# -- latency ----------------------------------------------------------------------------------------------
def rounds_done(doc: dict[str, Any] | None, models: list[dict[str, Any]]) -> int:
    """How many latency rounds every model has."""
    rounds = (doc or {}).get("rounds", {})
    return min((len(rounds.get(m["key"], [])) for m in models), default=0)


def stage_latency(
    a: argparse.Namespace, models: list[dict[str, Any]], log: Log, path: Path | None = None
) -> dict[str, Any]:
    """Fused deploy form, ONNX Runtime, 1 thread, wall clock; every round times every model once (the order
    reversed every other round), so a slow spell of the shared machine hits all models alike. Rounds left
    unfinished on another CPU are started again: one table never mixes two machines."""
    from nasearch.latency.backend import get_backend
    from nasearch.nn.inspect import fused_copy
    from nasearch.onnxio.isa import this_cpu_isa
    from nasearch.space import build_model
    from nasearch.space.arch import load_arch

    path = path or a.out / "latency.json"
    doc = read_json(path)
    if doc is not None and rounds_done(doc, models) >= a.rounds:
        return doc
    backend = get_backend("onnxruntime", "fp32", batch=1, threads=1, clock="wall")
    here = {"fingerprint": dataclasses.asdict(backend.fingerprint()), "isa": this_cpu_isa()}
    if doc is None or {k: doc.get(k) for k in here} != here:
        if doc is not None:
            log(f"latency: the unfinished rounds were measured on {doc['fingerprint']['device']}: starting again")
        doc = {**here, "rounds": {}}
    keys = [m["key"] for m in models]
    for key in keys:
        doc["rounds"].setdefault(key, [])
    done = rounds_done(doc, models)
    archs = {m["key"]: load_arch(a.out / m["file"]) for m in models}
    fused = {k: fused_copy(build_model(arch)) for k, arch in archs.items()}
    for r in range(done, a.rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            if len(doc["rounds"][key]) <= r:
                doc["rounds"][key].append(
                    round(backend.measure_model(fused[key], int(archs[key].data["imgsz"])).median_ms, 5)
                )
        write_json(path, doc)
        log(f"latency: round {r + 1}/{a.rounds} done")
    return doc


# -- report -----------------------------------------------------------------------------------------------
def summarize(cache: dict[str, Any], seeds: list[int], factor: float = FACTOR) -> dict[str, Any]:
    """Per model: latency, mAP per seed, mean ± sd, plateau; per preset: the claim with its paired interval."""
    models, latency, runs = cache["models"], cache["latency"], cache["runs"]
    rows: dict[str, dict[str, Any]] = {}
    for m in models:
        ms = latency.get(m["key"]) or []
        by_seed = {s: runs[(m["key"], s)] for s in seeds if runs.get((m["key"], s)) is not None}
        maps = [r["final_map"] for r in by_seed.values()]
        judged = [r["plateau"]["reached"] for r in by_seed.values() if r["plateau"]["reached"] is not None]
        rows[m["key"]] = {
            **m,
            "latency_ms": statistics.median(ms) if ms else None,
            "latency_rounds": ms,
            "map_by_seed": {str(s): r["final_map"] for s, r in by_seed.items()},
            "map_mean": statistics.fmean(maps) if maps else None,
            "map_sd": statistics.stdev(maps) if len(maps) >= 2 else None,
            "seeds_done": len(maps),
            "plateau_reached": sum(judged),
            "plateau_judged": len(judged),
            "plateau_max_gain": max(
                (r["plateau"]["gain"] for r in by_seed.values() if r["plateau"]["gain"] is not None), default=None
            ),
        }
    complete = lambda r: r["latency_ms"] is not None and r["seeds_done"] == len(seeds)  # noqa: E731
    suite = [r for r in rows.values() if r["kind"] == "suite"]
    claims = []
    for p in (r for r in rows.values() if r["kind"] == "preset"):
        claim: dict[str, Any] = {"preset": p["key"], "preset_latency_ms": p["latency_ms"], "suite_model": None}
        if not complete(p) or not all(complete(r) for r in suite):  # no verdict before every run is in
            claim["verdict"] = "incomplete"
        else:
            under = [r for r in suite if r["latency_ms"] <= factor * p["latency_ms"]]
            if not under:
                claim["verdict"] = f"no suite model at <= {factor}x its latency"
            else:
                best = max(under, key=lambda r: (r["map_mean"], -r["latency_ms"]))
                claim.update(gain(best, p, seeds))
                claim["suite_model"] = best["key"]
                claim.update(latency_ratio(best, p))
                iv = claim["latency_ratio_interval"]
                if claim["verdict"] == "beats" and iv is not None and iv["high"] > factor:
                    claim["verdict"] = f"beats on mAP; latency at <= {factor}x not shown"
        claims.append(claim)
    for r in filter(complete, suite):  # the preset at the same or higher latency: the fastest covering r
        cover = [
            p
            for p in rows.values()
            if p["kind"] == "preset" and complete(p) and factor * p["latency_ms"] >= r["latency_ms"]
        ]
        if cover:
            p = min(cover, key=lambda p: p["latency_ms"])
            r["vs_preset"] = {"preset": p["key"], **gain(r, p, seeds)}
    return {"models": list(rows.values()), "claims": claims, "seeds": seeds, "factor": factor}


def latency_ratio(model: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """Median latency of the model over the preset's, and its interval paired by round (each round times both
    back to back, so a slow spell of the machine hits both): on a noisy machine "at ≤ 1.02× its latency" is a
    claim too."""
    a, b = model["latency_rounds"], preset["latency_rounds"]
    out: dict[str, Any] = {"latency_ratio": model["latency_ms"] / preset["latency_ms"], "latency_ratio_interval": None}
    if len(a) == len(b) >= 2:
        iv = protocol.bootstrap(
            lambda x, y: np.median(x, axis=1) / np.median(y, axis=1), a, b, name="median latency ratio"
        )
        out["latency_ratio_interval"] = iv.as_dict()
    return out


def gain(model: dict[str, Any], preset: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """mAP(model) − mAP(preset), paired by training seed; the protocol's bootstrap interval over seeds."""
    pairs = [(model["map_by_seed"][str(s)], preset["map_by_seed"][str(s)]) for s in seeds]
    diffs = [x - y for x, y in pairs]
    out: dict[str, Any] = {"gains_by_seed": diffs, "gain": statistics.fmean(diffs), "interval": None}
    if len(pairs) >= 2:
        iv = protocol.paired_difference([x for x, _ in pairs], [y for _, y in pairs])
        out["interval"] = iv.as_dict()
        out["verdict"] = iv.verdict
    else:
        out["verdict"] = "not shown (one seed: no interval)"
    return out


def load_cache(out: Path, seeds: list[int], epochs: int) -> dict[str, Any]:
    models = read_json(out / "models.json") or []
    latency = (read_json(out / "latency.json") or {}).get("rounds", {})
    runs = {(m["key"], s): train_result(out, m["key"], s, epochs) for m in models for s in seeds}
    return {"models": models, "latency": latency, "runs": runs}


def fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def interval_text(g: dict[str, Any] | None) -> str:
    if not g:
        return "–"
    iv = g.get("interval")
    return f"{g['gain']:+.2f}" + (f" [{iv['low']:+.2f}, {iv['high']:+.2f}]" if iv else " (no interval)")


def render(summary: dict[str, Any], s: dict[str, Any], command: str, extra: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    trials = "" if s["search_trials"] is None else f" with {s['search_trials']} trials"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {extra['device']}, "
        f"ONNX Runtime {extra['ort']}. Reproduce: `{command} --shard 0/2` beside `{command} --shard 1/2`; "
        f"tables and plots from the cache: `{command} --report`.",
        "",
        f"- Search: `{Path(s['experiment']).name}`{trials}, "
        f"its suite aimed at {s['factor']} × each preset's latency ({extra.get('targets', '–')}; the search's clock).",
        f"- The search's suite, per target (the most accurate trial under it at the top rung, by the search's "
        f"proxy): {extra.get('suite', '–')}.",
        f"- Presets: {', '.join(s['presets'])}, scaled exactly as the search scales every candidate.",
        f"- Training: `nasearch train`, one recipe for every model: {s['epochs']} epochs, AdamW lr {s['lr']:g}, "
        f"warm-up + cosine, batch {s['batch']} (nominal batch {s['nbs']}), EMA of the weights (decay "
        f"{s['ema_decay']:g}, ramp {s['ema_tau']:g} steps), mosaic off for the last {s['close_mosaic']} epochs, the "
        f"architecture's resolution; seeds {', '.join(map(str, seeds))}.",
        "- mAP: COCO mAP50-95 (percent points) of the final epoch's EMA weights on the held-out val split, "
        "mean ± sd over seeds. Plateau: seeds whose best of the last fifth of the epochs is within 0.5 points of "
        "the earlier best (`nasearch train`'s test), and the largest such gain.",
        "- Latency: fused deploy form, ONNX Runtime 1 thread, wall clock, median of "
        f"{extra.get('rounds', '–')} interleaved rounds, right after the search and before any training; "
        f"targets and search timed on {extra.get('search_device', '–')}.",
        f"- Statistics: `nasearch.stats` protocol v{protocol.PROTOCOL_VERSION}, paired by seed, percentile "
        f"bootstrap ({protocol.RESAMPLES} resamples, seed {protocol.SEED}), 95% intervals in brackets; a suite "
        "model beats a preset only when the interval lies above zero and the interval of its latency ratio (median "
        "over the preset's, resampling the interleaved rounds) lies at or under the factor. With 3 seeds the "
        "gain's interval spans about the smallest to the largest per-seed gain: beating needs a gain on every seed.",
        "",
        "| model | kind | params (M) | GFLOPs | latency (ms) | mAP50-95 mean ± sd (n) | plateau | "
        "gain over the preset at ≥ its latency [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(summary["models"], key=lambda r: (r["latency_ms"] is None, r["latency_ms"] or 0)):
        vs = r.get("vs_preset")
        versus = f"vs {vs['preset']}: {interval_text(vs)}" if vs else "–"
        plateau = f"{r['plateau_reached']}/{r['plateau_judged']}" + (
            f" (max {r['plateau_max_gain']:+.2f})" if r["plateau_max_gain"] is not None else ""
        )
        lines.append(
            f"| {r['key']} (`{r['name']}`) | {r['kind']} | {r['params'] / 1e6:.3f} | {r['gflops']:.3f} | "
            f"{fmt(r['latency_ms'], 3)} | {fmt(r['map_mean'])} ± {fmt(r['map_sd'])} ({r['seeds_done']}) | {plateau} | "
            f"{versus} |"
        )
    lines += [
        "",
        f"| preset | latency (ms) | suite model at ≤ {summary['factor']}× | latency ratio [95% CI] | gain per seed | "
        "mean gain [95% CI] | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in summary["claims"]:
        per_seed = ", ".join(f"{g:+.2f}" for g in c.get("gains_by_seed", [])) or "–"
        ratio = "–"
        if c.get("latency_ratio") is not None:
            iv = c["latency_ratio_interval"]
            ratio = f"{c['latency_ratio']:.3f}" + (f" [{iv['low']:.3f}, {iv['high']:.3f}]" if iv else " (no interval)")
        lines.append(
            f"| {c['preset']} | {fmt(c['preset_latency_ms'], 3)} | {c['suite_model'] or '–'} | {ratio} | {per_seed} | "
            f"{interval_text(c) if 'gain' in c else '–'} | **{c['verdict']}** |"
        )
    lines += ["", f"![mAP against latency]({extra['plot']}) ![validation curves]({extra['curves']})"]
    return "\n".join(lines)


def plot(summary: dict[str, Any], cache: dict[str, Any], path: Path, curves_path: Path, title: str) -> None:
    from nasearch.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for kind, marker, color in (("preset", "s", "tab:red"), ("suite", "o", "tab:blue")):
        rows = [r for r in summary["models"] if r["kind"] == kind and r["latency_ms"] and r["map_mean"] is not None]
        ax.errorbar(
            [r["latency_ms"] for r in rows],
            [r["map_mean"] for r in rows],
            yerr=[r["map_sd"] or 0.0 for r in rows],
            fmt=marker,
            color=color,
            capsize=3,
            label=kind,
        )
        for r in rows:
            ax.annotate(
                f"{r['key']} (n={r['seeds_done']})",
                (r["latency_ms"], r["map_mean"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("latency (ms, ONNX Runtime, 1 thread)")
    ax.set_ylabel("final mAP50-95 (mean ± sd over n seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, plt)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(cache["models"]):
        for j, ((key, _), run) in enumerate((k, v) for k, v in cache["runs"].items() if k[0] == m["key"] and v):
            pts = run["curve"]
            style = "--" if m["kind"] == "preset" else "-"
            ax.plot(
                [p["epoch"] for p in pts],
                [p["map"] for p in pts],
                style,
                marker=".",
                color=colors[i % len(colors)],
                linewidth=1,
                label=key if j == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mAP50-95")
    n_runs = sum(1 for run in cache["runs"].values() if run)
    ax.set_title(f"{title}\nvalidation curves, n = {n_runs} runs (dashed: presets; one line per seed)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, curves_path, plt)


def _save(fig: Any, path: Path, plt: Any) -> None:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def setting_flags(values: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """This script's `--key value` arguments for the given settings (a list spreads, None is left out)."""
    flags: list[str] = []
    for key in keys:
        value = values[key]
        if value is not None:
            flags += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    return flags


def command_line(a: argparse.Namespace, s: dict[str, Any], rounds: int) -> str:
    """The command that reproduces the cached run: every setting that differs from the defaults."""
    defaults = parse_args(["--data", a.data])
    given = {**s, "seeds": a.seeds, "rounds": rounds or a.rounds}
    base = {**settings(defaults), "seeds": defaults.seeds, "rounds": defaults.rounds}
    keys = ("experiment", "search_trials", *RECIPE, "presets", "seeds", "rounds")
    flags = ["--data", a.data, *setting_flags(given, [k for k in keys if given.get(k) != base[k]])]
    if a.out != ROOT / "runs" / f"payoff_{a.data}":
        flags += ["--out", str(a.out)]
    return " ".join(["python benchmarks/payoff.py", *flags])


def write_report(a: argparse.Namespace, log: Log) -> dict[str, Any]:
    s = read_json(a.out / "settings.json") or settings(a)
    cache = load_cache(a.out, a.seeds, s["epochs"])
    summary = summarize(cache, a.seeds, s["factor"])
    targets = read_json(a.out / "targets.json") or {}
    latency_rounds = min((len(v) for v in cache["latency"].values()), default=0)
    figures = Path(a.figures)
    plot_path, curves_path = figures / f"payoff_{a.data}.png", figures / f"payoff_{a.data}_curves.png"
    title = f"payoff on the {a.data} set ({Path(s['experiment']).name})"
    plot(summary, cache, plot_path, curves_path, title)
    command = command_line(a, s, latency_rounds)
    timed = read_json(a.out / "latency.json") or {}
    fingerprint = timed.get("fingerprint", {})
    extra = {
        "device": f"{fingerprint.get('device', platform.machine())} CPU ({timed.get('isa', 'CPU path not recorded')})",
        "search_device": f"{targets.get('device', 'not recorded')} ({targets.get('isa', '–')})",
        "ort": fingerprint.get("backend_version", "–"),
        "targets": ", ".join(
            f"{k} {FACTOR * v['search_latency_ms']:.3f} ms" for k, v in targets.get("presets", {}).items()
        )
        or "–",
        "rounds": latency_rounds,
        "suite": suite_text(a.out, cache["models"], targets),
        "plot": os.path.relpath(plot_path, Path(a.readme).parent),
        "curves": os.path.relpath(curves_path, Path(a.readme).parent),
    }
    body = render(summary, s, command, extra)
    write_json(a.out / "payoff.json", {"settings": s, **summary})
    write_section(Path(a.readme), f"payoff-{a.data}", body)
    done = sum(v is not None for v in cache["runs"].values())
    log(f"report: {done}/{len(cache['runs'])} trainings, {latency_rounds} latency rounds -> {a.out / 'payoff.json'}")
    return summary


def suite_text(out: Path, models: list[dict[str, Any]], targets: dict[str, Any]) -> str:
    """What the search delivered per target: a found model, a preset it kept as it is (its proxy found nothing
    more accurate under that latency), or nothing measured under it."""
    summary = read_json(out / "search" / "summary.json")
    if summary is None:
        return "–"
    found = {m["trial"]: m["key"] for m in models if m["kind"] == "suite"}
    presets = {p["trial"]: p["preset"] for p in summary.get("presets", [])}
    rows = {row.get("target_ms"): row for row in summary["suite"]}
    aims = list(zip(targets.get("presets", {}), targets.get("targets_ms", []), strict=True)) or [("", t) for t in rows]
    parts = []
    for name, target in aims:
        at = "" if target is None else f"{name} target {target:.3f} ms: ".lstrip()
        if (row := rows.get(target)) is None:
            parts.append(f"{at}nothing measured under it")
            continue
        trial = row["trial"]
        who = found.get(trial) or (f"the preset {presets[trial]} itself" if trial in presets else f"trial {trial}")
        parts.append(f"{at}{who} (trial {trial}, {row['latency_ms']:.3f} ms, proxy mAP {row['accuracy']:.2f})")
    return "; ".join(parts)


# -- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} payoff[{a.data} {a.shard}] {msg}", file=sys.stderr, flush=True)

    if a.report:
        write_report(a, log)
        return
    import torch

    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    check_settings(a, settings(a), log)
    ctx = search_context(ROOT / read_json(a.out / "settings.json")["experiment"])  # an absolute path stays one
    data = ctx.dataset()
    # nothing trains while shard 0 times the presets, searches and times the models (all of it measures latency)
    if a.shard_k == 0:
        models = stage_search(a, ctx, log)
        stage_latency(a, models, log)
    else:
        models = wait_for(a, "models.json", "the search's model list", log)
        wait_for(a, "latency.json", "latency rounds", log, ready=lambda doc: rounds_done(doc, models) >= a.rounds)
    by_key = {m["key"]: m for m in models}
    mine = shard_jobs(jobs(models, a.seeds), a.shard_k, a.shard_n)
    log(f"{len(models)} models, {len(mine)} training runs in this shard")
    for key, seed in mine:
        train(a, by_key[key], seed, ctx.imgsz, data, log)
    if left := trainings_left(a, models):
        log(f"report: left to the shard that finishes the last training ({len(left)} runs still to finish)")
        return
    write_report(a, log)


def trainings_left(a: argparse.Namespace, models: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The training runs of every shard that have not finished yet."""
    return [(k, s) for k, s in jobs(models, a.seeds) if train_result(a.out, k, s, a.epochs) is None]


if __name__ == "__main__":
    main()
