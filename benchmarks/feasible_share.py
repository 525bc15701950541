"""Feasible share: how much of a search's budget goes to candidates over the latency limit, with the latency
screen (the default) and without.

Runs `nasearch search` on an experiment twice per seed, `latency_screen.enabled` true and false, everything
else equal, and counts the complete (measured) trials over the constraints. The accuracy rungs are dropped
(`--keep-rungs` keeps them): the sampler learns from the screening values only, so the rungs change the
cost of a run, not which candidates it proposes. Latency is whatever the experiment says (the quickstart
measures it on this machine, so on a shared machine the counts carry its noise: say so when quoting them).

    python benchmarks/feasible_share.py [--experiment quickstart] [--trials 20] [--seeds 0] [--latency-limit MS]
        [--out DIR]

Writes OUT/summary.json: per setting, n complete trials, infeasible among them (Wilson 95% interval),
candidates skipped by the screen, and the run directories (each a normal search run: `nasearch pareto`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import optuna

from nasearch.app.search import run_search
from nasearch.errors import InputError
from nasearch.search.experiment import load_experiment
from nasearch.search.record import records
from nasearch.search.study import RunInfo, load_study
from nasearch.stats import proportion


def count(run_dir: Path) -> dict[str, int]:
    info = RunInfo.load(run_dir)
    trials = records(load_study(info.storage, info.study_name))
    complete = [r for r in trials if r.state == optuna.trial.TrialState.COMPLETE]
    return {
        "complete": len(complete),
        "infeasible": sum(1 for r in complete if not r.feasible),
        "screened": sum(1 for r in trials if r.has("screened")),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiment", default="quickstart")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--keep-rungs", action="store_true")
    ap.add_argument(
        "--latency-limit",
        type=float,
        default=None,
        help="latency limit in ms instead of the experiment's (a limit that no candidate exceeds tests nothing)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/feasible_share"))
    args = ap.parse_args(argv)
    base = load_experiment(args.experiment)
    out: dict[str, Any] = {
        "experiment": base.file,
        "trials": args.trials,
        "seeds": args.seeds,
        "rungs_kept": args.keep_rungs,
        "latency_limit_ms": args.latency_limit,
        "settings": {},
    }
    for enabled in (False, True):
        totals = {"complete": 0, "infeasible": 0, "screened": 0}
        runs = []
        for seed in args.seeds:
            raw = {
                **base.raw,
                "seed": seed,
                "trials": args.trials,
                "latency_screen": {**base.raw.get("latency_screen", {}), "enabled": enabled},
            }
            if args.latency_limit is not None:
                raw["constraints"] = {**raw.get("constraints", {}), "latency_ms": args.latency_limit}
            if not args.keep_rungs:
                raw["objectives"] = {**raw["objectives"], "accuracy": {**raw["objectives"]["accuracy"], "rungs": []}}
            exp = base.with_overrides(**raw)
            run_dir = args.out / f"screen-{'on' if enabled else 'off'}-seed{seed}"
            resume = (run_dir / "run.json").exists()
            try:
                run_search(exp, out=run_dir, resume=resume, show_progress=False)
            except InputError as exc:  # no candidate met the limit: still a run to count
                if "no trial did" not in exc.expected:
                    raise
            c = count(run_dir)
            runs.append({"seed": seed, "run_dir": str(run_dir), **c})
            totals = {k: totals[k] + c[k] for k in totals}
        share = proportion(totals["infeasible"], totals["complete"])
        out["settings"]["screen" if enabled else "no_screen"] = {
            **totals,
            "infeasible_share": share.estimate,
            "ci95": [share.low, share.high],
            "runs": runs,
        }
        print(
            f"latency screen {'on ' if enabled else 'off'}: {totals['infeasible']} of {totals['complete']} "
            f"complete trials over the limit ({share.estimate:.0%}, 95% CI {share.low:.0%}–{share.high:.0%}), "
            f"{totals['screened']} candidates skipped unmeasured",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
