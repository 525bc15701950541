"""How much does a payoff training's validation curve still swing at its end, under two recipes?

The payoff compares final-epoch mAP, so a recipe whose late curve swings from epoch to epoch makes the
comparison a lottery. For every training run present in both payoff folders (the same model key and seed,
`train/KEY/seedS/curve.json`, finished) this prints the mean absolute change of mAP50-95 from one epoch to the
next over the last `--last` epochs, and the difference B − A paired by run (`nasearch.stats` bootstrap 95%
interval; the run is the unit resampled).

    python benchmarks/payoff_recipes.py benchmarks/results/payoff_trees/superseded/recipe1 \
        benchmarks/results/payoff_trees
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import payoff  # noqa: E402
from nasearch import stats as protocol  # noqa: E402
from nasearch.errors import InputError, exit_bad_input  # noqa: E402


def finished_curves(folder: Path, epochs: int) -> dict[tuple[str, str], list[float]]:
    """(model key, seed folder) → the mAP50-95 of each epoch, for runs that reached `epochs`."""
    curves = {}
    for run in sorted(folder.glob("train/*/seed*/")):
        key, seed = run.parent.name, run.name
        if not seed.removeprefix("seed").isdigit():
            continue
        try:
            result = payoff.train_result(folder, key, int(seed.removeprefix("seed")), epochs=0)  # read every curve
            maps = [] if result is None else [float(p["map"]) for p in result["curve"]]
        except (ValueError, KeyError, TypeError) as e:
            expected = "the per-epoch curve `nasearch train` writes"
            exit_bad_input(InputError(run / "curve.json", "curve", expected, type(e).__name__))
        if len(maps) >= epochs:
            curves[(key, seed)] = maps[:epochs]
    return curves


def late_swing(curve: list[float], last: int) -> float:
    """Mean |mAP(e) − mAP(e−1)| over the last `last` epochs."""
    tail = curve[-(last + 1) :]
    return statistics.fmean(abs(b - a) for a, b in itertools.pairwise(tail))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="payoff folder of recipe A")
    ap.add_argument("b", type=Path, help="payoff folder of recipe B")
    ap.add_argument("--epochs", type=int, default=60, help="only runs that finished this many epochs")
    ap.add_argument("--last", type=int, default=20, help="epochs at the end whose swings are averaged")
    a = ap.parse_args(argv)
    curves_a, curves_b = finished_curves(a.a, a.epochs), finished_curves(a.b, a.epochs)
    runs = sorted(set(curves_a) & set(curves_b))
    if len(runs) < 2:
        found = f"{len(runs)} finished in both (A {len(curves_a)}, B {len(curves_b)})"
        exit_bad_input(
            InputError(a.b, "train/KEY/seedS/curve.json", f"at least 2 runs of {a.epochs} epochs also in {a.a}", found)
        )
    swing_a = [late_swing(curves_a[r], a.last) for r in runs]
    swing_b = [late_swing(curves_b[r], a.last) for r in runs]
    print(f"mean |Δ mAP50-95| per epoch over the last {a.last} of {a.epochs} epochs, n = {len(runs)} runs")
    for r, x, y in zip(runs, swing_a, swing_b, strict=True):
        print(f"  {r[0]:<34} {r[1]:<6} A {x:6.2f}   B {y:6.2f}")
    print(f"A ({a.a}): mean {statistics.fmean(swing_a):.2f}")
    print(f"B ({a.b}): mean {statistics.fmean(swing_b):.2f}")
    diff = protocol.paired_difference(swing_b, swing_a)
    reading = {"worse": "B swings less", "beats": "B swings more", "not shown": "no difference shown"}[diff.verdict]
    print(f"B − A paired by run: {diff.text(2)} (95% bootstrap interval, n = {diff.n}): {reading}")


if __name__ == "__main__":
    main()
