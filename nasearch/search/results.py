"""What a search leaves in RUN_DIR, all derived from the study (so it can be rebuilt at any time):

- `trials.csv`: every trial, its state, architecture, every metric and every rung's result;
- `pareto.csv`: the front at the highest fidelity reached (feasible candidates only, one per architecture);
- `hypervolume.csv`: hypervolume of the front by trial (screening and final fidelity, fixed references);
- `pareto.png`: every trial, the front, the presets labelled, the suite's latency targets;
- `suite/*.yaml` + `suite.csv`: the delivered models; `archs/trial_NNNNN.yaml`: each front member;
- `summary.json`: counts, front, suite, each preset against the best found model at its latency (a proxy
  figure), reference points.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from nasearch import atomic
from nasearch.search.promotion import pareto_indices
from nasearch.search.record import TrialRecord, read_meta, records
from nasearch.search.suite import best_subset, best_under_targets, hypervolume, reference_point

STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.FAIL: "failed",
    TrialState.PRUNED: "rejected",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}
MAX_RUNGS_COLUMNS = 8


def _write_atomic(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def _state_name(r: TrialRecord) -> str:
    """A skipped candidate (`screened`: told PRUNED by the latency screen) is named apart from a rejected one."""
    if r.has("screened") and r.state == TrialState.PRUNED:
        return "screened"
    return STATE_NAMES.get(r.state, r.state.name.lower())


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat record per trial, in trial order."""
    rows = []
    for r in records(study):
        a = r.attrs()  # rung documents as stored (plain mappings)
        screen = r.latency_screen
        row: dict[str, Any] = {
            "trial": r.number,
            "state": _state_name(r),
            "preset": _or(r.preset, ""),
            "arch_name": _or(r.arch_name, ""),
            "arch_hash": _or(r.arch_hash, ""),
            "params": r.params,
            "gflops": r.gflops,
            "latency_ms": r.latency_ms,
            "latency_measured": r.latency_measured,
            "latency_method": _or(r.latency_method, ""),
            "screen_latency_ms": r.values[0] if r.values else r.screen_latency_ms,
            "screen_accuracy": r.values[1] if r.values else None,
            "accuracy": r.accuracy,
            "accuracy_kind": _or(r.accuracy_kind, ""),
            "fidelity": r.fidelity,
            "feasible": r.feasible,
            "violations": "; ".join(r.violations or []),
            "rejected": _or(r.rejected, ""),
            "screened": _or(r.screened, ""),
            "latency_predicted_ms": screen.predicted_ms if screen is not None else None,
            "failure": _or(r.failure, ""),
            "duplicate_of": r.duplicate_of,
            "retry_of": r.retry_of,
            "repair_of": r.repair_of,
            "seconds": r.seconds,
        }
        rungs = a.get("rungs") or []
        for doc in rungs[:MAX_RUNGS_COLUMNS]:
            n = doc["rung"]
            row[f"rung{n}_accuracy"] = doc.get("accuracy")
            row[f"rung{n}_kind"] = doc.get("kind")
            row[f"rung{n}_latency_ms"] = doc.get("latency_ms")
            row[f"rung{n}_seconds"] = doc.get("seconds")
            row[f"rung{n}_promoted"] = doc.get("promoted")
        row["_rungs"] = rungs
        row["_yaml"] = _or(r.arch_yaml, "")
        rows.append(row)
    return rows


@dataclass
class FrontEntry:
    trial: int
    latency_ms: float
    latency_measured: bool
    accuracy: float
    accuracy_kind: str
    params: int
    gflops: float
    arch_name: str
    arch_hash: str
    preset: str
    fidelity: int
    yaml: str

    def point(self) -> tuple[float, float]:
        return (self.latency_ms, self.accuracy)


def _at_rung(row: dict, rung: int) -> dict | None:
    return next((d for d in row["_rungs"] if d.get("rung") == rung and d.get("feasible")), None)


def candidates_at(rows: list[dict], rung: int) -> list[FrontEntry]:
    """Feasible, complete, distinct architectures scored at `rung`, in trial order."""
    out, seen = [], set()
    for row in rows:
        if row["state"] != "complete" or row["duplicate_of"] is not None or not row["feasible"]:
            continue
        doc = _at_rung(row, rung)
        if doc is None or row["arch_hash"] in seen:
            continue
        seen.add(row["arch_hash"])
        out.append(
            FrontEntry(
                row["trial"],
                float(doc["latency_ms"]),
                bool(doc.get("latency_measured")),
                float(doc["accuracy"]),
                str(doc.get("kind", "")),
                int(row["params"] or 0),
                float(row["gflops"] or 0.0),
                row["arch_name"],
                row["arch_hash"],
                row["preset"],
                rung,
                row["_yaml"],
            )
        )
    return out


def top_rung(rows: list[dict]) -> int | None:
    levels = [
        d["rung"] for r in rows if r["state"] == "complete" and r["feasible"] for d in r["_rungs"] if d.get("feasible")
    ]
    return max(levels) if levels else None


def front(rows: list[dict]) -> tuple[list[FrontEntry], list[FrontEntry], int | None]:
    """(front, every candidate at the top rung, the top rung), the front sorted by latency."""
    rung = top_rung(rows)
    if rung is None:
        return [], [], None
    pool = candidates_at(rows, rung)
    idx = pareto_indices([e.point() for e in pool])
    return sorted((pool[i] for i in idx), key=lambda e: (e.latency_ms, -e.accuracy)), pool, rung


def hypervolume_by_trial(rows: list[dict], rung: int, latency_limit: float | None) -> tuple[list[float], Any]:
    pool = candidates_at(rows, rung)
    if not pool:
        return [0.0] * len(rows), None
    ref = reference_point([e.point() for e in pool], latency_limit)
    by_trial: dict[int, tuple[float, float]] = {e.trial: e.point() for e in pool}
    seen: list[tuple[float, float]] = []
    curve = []
    for row in rows:
        if row["trial"] in by_trial:
            seen.append(by_trial[row["trial"]])
        curve.append(hypervolume(seen, ref))
    return curve, ref


def choose_suite(
    entries: list[FrontEntry], models: int | None, targets: list[float] | None
) -> list[tuple[FrontEntry, float]]:
    """(model, its latency target): per explicit target, or the K members of largest hypervolume."""
    points = [e.point() for e in entries]
    if targets:
        picks = best_under_targets(points, targets)
        out, used = [], set()
        for target, idx in zip(targets, picks, strict=True):
            if idx is not None and idx not in used:
                used.add(idx)
                out.append((entries[idx], target))
        return out
    chosen = best_subset(points, models or 3)
    return [(entries[i], entries[i].latency_ms) for i in chosen]


@dataclass
class Results:
    rows: list[dict]
    front: list[FrontEntry]
    pool: list[FrontEntry]
    rung: int | None
    suite: list[tuple[FrontEntry, float]]
    meta: dict[str, Any]
    hv_screen: list[float]
    hv_final: list[float]
    ref_screen: Any
    ref_final: Any

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["state"]] = out.get(r["state"], 0) + 1
        return out


def collect(study: optuna.Study) -> Results:
    meta = read_meta(study)
    rows = trial_rows(study)
    entries, pool, rung = front(rows)
    limit = meta.get("constraints", {}).get("latency_ms")
    hv_screen, ref_screen = hypervolume_by_trial(rows, 0, limit)
    hv_final, ref_final = hypervolume_by_trial(rows, rung, limit) if rung is not None else ([], None)
    suite_cfg = meta.get("experiment", {}).get("suite", {}) or {}
    targets = suite_cfg.get("latency_targets_ms")
    models = suite_cfg.get("models") or (None if targets else 3)
    suite = choose_suite(entries, models, targets) if entries else []
    return Results(rows, entries, pool, rung, suite, meta, hv_screen, hv_final, ref_screen, ref_final)


PRESET_LABEL = (
    "proxy figure: the search's accuracy signal at that rung, one evaluation each, no interval; "
    "only full training of both shows whether a found model beats the preset"
)


def _best_rung(row: dict) -> dict | None:
    """The highest rung at which a trial was scored and feasible."""
    docs = [d for d in row["_rungs"] if d.get("feasible")]
    return max(docs, key=lambda d: d["rung"]) if docs else None


def preset_comparison(rows: list[dict]) -> list[dict[str, Any]]:
    """For each preset of the run: the best model the search found at or below its latency, scored at the same
    rung (the highest the preset reached), and the accuracy gain over the preset — a proxy figure."""
    found: dict[int, list[FrontEntry]] = {}
    out, seen = [], set()
    for row in rows:
        name = row["preset"]
        if not name or name in seen or row["state"] != "complete" or row["duplicate_of"] is not None:
            continue
        seen.add(name)
        doc = _best_rung(row) if row["feasible"] else None
        item: dict[str, Any] = {
            "preset": name,
            "trial": row["trial"],
            "latency_ms": row["latency_ms"],
            "rung": None,
            "accuracy": None,
            "accuracy_kind": None,
            "best_found": None,
            "gain": None,
            "front_ahead": None,
            "label": PRESET_LABEL,
        }
        if doc is None:
            item["status"] = f"over the constraints ({row['violations']})" if not row["feasible"] else "not scored"
            out.append(item)
            continue
        rung, lat, acc = doc["rung"], float(doc["latency_ms"]), float(doc["accuracy"])
        item.update(rung=rung, latency_ms=lat, accuracy=acc, accuracy_kind=doc.get("kind", ""))
        pool = found.setdefault(rung, [e for e in candidates_at(rows, rung) if not e.preset])
        rivals = [e for e in pool if e.latency_ms <= lat]
        if not rivals:
            item["status"] = "no found model at or below its latency"
            out.append(item)
            continue
        best = max(rivals, key=lambda e: (e.accuracy, -e.latency_ms))
        gain = best.accuracy - acc
        item.update(
            best_found={
                "trial": best.trial,
                "latency_ms": best.latency_ms,
                "accuracy": best.accuracy,
                "name": best.arch_name,
            },
            gain=gain,
            front_ahead=gain > 0,
            status="found model ahead" if gain > 0 else "no found model ahead",
        )
        out.append(item)
    return out


def preset_lines(items: list[dict[str, Any]]) -> list[str]:
    """One line per preset for the end of `nasearch search` (labelled: a proxy figure)."""
    lines = []
    for p in items:
        if p["best_found"] is None:
            lines.append(f"preset {p['preset']}: {p['status']}")
            continue
        b = p["best_found"]
        lines.append(
            f"preset {p['preset']} ({p['latency_ms']:.3g} ms, {p['accuracy_kind']} {p['accuracy']:.4g} at "
            f"rung {p['rung']}): best found at or below its latency trial {b['trial']} "
            f"({b['latency_ms']:.3g} ms, {b['accuracy']:.4g}), {p['gain']:+.4g}: {p['status']} "
            "[proxy figure, no interval]"
        )
    return lines


CONSTRAINT_COLUMNS = {"latency_ms": ("latency_ms", 1.0), "params_m": ("params", 1e-6), "gflops": ("gflops", 1.0)}


def unmet_constraints(res: Results) -> str | None:
    """When trials completed but none met the experiment's constraints (so the front is empty): each limit
    with the best value any complete trial reached. None otherwise."""
    done = [r for r in res.rows if r["state"] == "complete"]
    limits = res.meta.get("constraints", {}) or {}
    if res.front or not done or not limits or any(r["feasible"] is not False for r in done):
        return None
    parts = []
    for key, limit in limits.items():
        column, scale = CONSTRAINT_COLUMNS.get(key, (key, 1.0))
        values = [r[column] if r.get(column) is not None else r.get(f"screen_{column}") for r in done]
        values = [v * scale for v in values if v is not None]
        best = f"{min(values):.4g}" if values else "no value"
        parts.append(f"{key} <= {limit:g} (best of {len(done)} complete trials: {best})")
    return "; ".join(parts)


def arch_path(run_dir: Path, trial: int) -> Path:
    return run_dir / "archs" / f"trial_{trial:05d}.yaml"


def front_doc(res: Results, run_dir: Path) -> list[dict[str, Any]]:
    """The `nasearch pareto --json` list: one entry per front member, `arch` = its YAML file."""
    return [
        {
            "trial": e.trial,
            "latency_ms": round(e.latency_ms, 4),
            "latency_measured": e.latency_measured,
            "accuracy": e.accuracy,
            "accuracy_kind": e.accuracy_kind,
            "params": e.params,
            "gflops": e.gflops,
            "arch": str(arch_path(run_dir, e.trial)),
            "name": e.arch_name,
            "preset": e.preset or None,
            "fidelity": e.fidelity,
        }
        for e in res.front
    ]


def _header(e: FrontEntry, extra: str = "") -> str:
    lat = "measured" if e.latency_measured else "predicted"
    return (
        f"# trial {e.trial}{extra}: latency {e.latency_ms:.4g} ms ({lat}), "
        f"{e.accuracy_kind} {e.accuracy:.4g}, {e.params / 1e6:.3f} M params, {e.gflops:.3f} GFLOPs\n"
    )


def write_results(study: optuna.Study, run_dir: Path, plot: Path | None = None) -> Results:
    """Write every result file into `run_dir` (atomically, file by file) and return what was written."""
    res = collect(study)
    run_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in res.rows])
    for col in ("params", "fidelity", "duplicate_of", "retry_of", "repair_of"):
        if col in table:
            table[col] = table[col].astype("Int64")
    _write_atomic(run_dir / "trials.csv", table.to_csv(index=False))
    doc = front_doc(res, run_dir)
    _write_atomic(run_dir / "pareto.csv", pd.DataFrame(doc).to_csv(index=False) if doc else "trial\n")
    hv = pd.DataFrame({"trial": [r["trial"] for r in res.rows], "hypervolume_screen": res.hv_screen})
    if res.rung is not None and res.rung > 0:
        hv["hypervolume_final"] = res.hv_final
    _write_atomic(run_dir / "hypervolume.csv", hv.to_csv(index=False))
    for e in res.front:
        _write_atomic(arch_path(run_dir, e.trial), _header(e) + e.yaml)
    suite_dir = run_dir / "suite"
    if suite_dir.is_dir():
        for old in suite_dir.glob("*.yaml"):
            old.unlink()
    suite_rows = []
    for rank, (e, target) in enumerate(res.suite, 1):
        name = f"{rank}_{e.arch_name}.yaml"
        _write_atomic(
            suite_dir / name, _header(e, f", suite model {rank}/{len(res.suite)}, target {target:.4g} ms") + e.yaml
        )
        suite_rows.append(
            {
                "rank": rank,
                "target_ms": target,
                "trial": e.trial,
                "file": f"suite/{name}",
                "latency_ms": e.latency_ms,
                "accuracy": e.accuracy,
                "accuracy_kind": e.accuracy_kind,
                "params": e.params,
                "gflops": e.gflops,
            }
        )
    suite_csv = pd.DataFrame(suite_rows).to_csv(index=False) if suite_rows else "rank\n"
    _write_atomic(run_dir / "suite.csv", suite_csv)
    summary = {
        "study": study.study_name,
        "counts": res.counts(),
        "top_rung": res.rung,
        "front": doc,
        "suite": suite_rows,
        "presets": preset_comparison(res.rows),
        "hypervolume_screen": res.hv_screen[-1] if res.hv_screen else 0.0,
        "reference_screen": res.ref_screen,
        "hypervolume_final": res.hv_final[-1] if res.hv_final else None,
        "reference_final": res.ref_final,
    }
    _write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, default=_jsonable) + "\n")
    from nasearch.search.plot import plot_front

    plot_front(res, plot or run_dir / "pareto.png")
    return res


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return str(obj)
