"""Check a payoff table: retrain models of it with seeds outside its cache, and time them again side by side.

Each `KEY:SEED` trains the cached model KEY (a preset or a suite model of `OUT/models.json`) once more with the
cached run's recipe (read from `OUT/settings.json`, so it cannot drift) into `OUT/check/KEY/seedS`, resumable.
Then the checked models are timed again in interleaved rounds on this machine (`OUT/check/latency.json`, the
same evaluator as the table's). It prints, per model, the new final mAP50-95 beside the cached seeds' values,
the latency now beside the table's, and, for a suite model checked with a preset, the gain at the new seed and
the latency ratio now with its interval over rounds. The table and the README are not touched. As with the
payoff itself, run nothing else while it times (its last stage).

    python benchmarks/payoff_check.py --data trees suite1:7 yolov8n:7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import payoff  # noqa: E402
from nasearch.errors import InputError, exit_bad_input  # noqa: E402


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[tuple[str, int]]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=sorted(payoff.EXPERIMENTS), required=True)
    p.add_argument("--out", default=None, help="the payoff's cache folder (default runs/payoff_DATA)")
    p.add_argument("--rounds", type=int, default=11, help="interleaved latency rounds of the checked models")
    p.add_argument("runs", nargs="+", metavar="KEY:SEED", help="a model of the table and a seed to train it with")
    c = p.parse_args(argv)
    out = Path(c.out or ROOT / "runs" / f"payoff_{c.data}")
    stored = payoff.read_json(out / "settings.json")
    if stored is None:
        exit_bad_input(InputError(out / "settings.json", "settings", "a payoff run's cache", "none"))
    cached = {**stored, "experiment": str(ROOT / stored["experiment"])}
    keys = ("experiment", "presets", "search_trials", *payoff.RECIPE)
    flags = ["--data", c.data, "--out", str(out), "--rounds", str(c.rounds), *payoff.setting_flags(cached, keys)]
    runs = []
    for spec in c.runs:
        key, _, seed = spec.partition(":")
        if not (key and seed.isdigit()):
            exit_bad_input(InputError(None, "KEY:SEED", "a model key and a seed, e.g. suite1:7", repr(spec)))
        runs.append((key, int(seed)))
    a = payoff.parse_args(flags)
    a.seeds = sorted({int(d.name.removeprefix("seed")) for d in (out / "train").glob("*/seed*") if d.is_dir()})
    return a, runs


def main(argv: list[str] | None = None) -> None:
    a, runs = parse_args(argv)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} payoff-check[{a.data}] {msg}", file=sys.stderr, flush=True)

    payoff.check_settings(a, payoff.settings(a), log)  # the experiment file must still be the cached one
    models = {m["key"]: m for m in payoff.read_json(a.out / "models.json") or []}
    for key, _ in runs:
        if key not in models:
            found = f"{key!r} (the table has {', '.join(models) or 'no models'})"
            exit_bad_input(InputError(a.out / "models.json", "key", "a model of the payoff table", found))
    import torch

    torch.set_num_threads(1)
    ctx = payoff.search_context(a.experiment)  # the cached experiment, as parse_args resolved it
    data = ctx.dataset()
    for key, seed in runs:
        payoff.train(a, models[key], seed, ctx.imgsz, data, log, folder="check")
    checked = [models[k] for k in dict.fromkeys(k for k, _ in runs)]
    timed = payoff.stage_latency(a, checked, log, path=a.out / "check" / "latency.json")
    print(report(a, models, runs, timed))


def report(a: argparse.Namespace, models: dict[str, Any], runs: list[tuple[str, int]], timed: dict) -> str:
    """The new runs beside the cached ones; suite against preset at each shared new seed."""
    cache = payoff.load_cache(a.out, a.seeds, a.epochs)
    table = payoff.summarize(cache, a.seeds)
    rows = {r["key"]: r for r in table["models"]}
    now = {k: statistics.median(v) for k, v in timed["rounds"].items()}
    new = {(k, s): payoff.train_result(a.out, k, s, a.epochs, "check")["final_map"] for k, s in runs}
    lines = [f"check of {a.out} on {timed['fingerprint']['device']} ({timed['isa']}), {a.rounds} latency rounds"]
    for (key, seed), value in new.items():
        r = rows[key]
        cached = ", ".join(f"{v:.2f}" for v in r["map_by_seed"].values())
        inside = min(r["map_by_seed"].values()) <= value <= max(r["map_by_seed"].values())
        lines.append(
            f"{key} seed {seed}: final mAP50-95 {value:.2f} (cached seeds {cached}; mean {payoff.fmt(r['map_mean'])}"
            f" ± {payoff.fmt(r['map_sd'])}; {'inside' if inside else 'outside'} their range); latency "
            f"{now[key]:.3f} ms now, {payoff.fmt(r['latency_ms'], 3)} ms in the table"
        )
    for c in table["claims"]:
        suite, preset = c["suite_model"], c["preset"]
        for seed in sorted({s for k, s in new if k == suite} & {s for k, s in new if k == preset}):
            ratio = payoff.latency_ratio(
                {"latency_ms": now[suite], "latency_rounds": timed["rounds"][suite]},
                {"latency_ms": now[preset], "latency_rounds": timed["rounds"][preset]},
            )
            iv = ratio["latency_ratio_interval"]
            lines.append(
                f"{suite} vs {preset}, seed {seed}: gain {new[suite, seed] - new[preset, seed]:+.2f} (the table's "
                f"mean gain {payoff.interval_text(c)}); latency ratio now {ratio['latency_ratio']:.3f}"
                + (f" [{iv['low']:.3f}, {iv['high']:.3f}]" if iv else "")
                + f", in the table {c['latency_ratio']:.3f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
