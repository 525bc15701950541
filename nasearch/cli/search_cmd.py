"""`nasearch search EXPERIMENT.yaml` and `nasearch pareto RUN_DIR`."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from nasearch.cli.common import emit_json, guarded, log
from nasearch.errors import InputError
from nasearch.search.experiment import SAMPLERS
from nasearch.search.plot import plot_front
from nasearch.validation import check_positive


def _check_choice(value: str | None, allowed: tuple[str, ...], flag: str) -> None:
    if value is not None and value not in allowed:
        raise InputError(flag, flag.lstrip("-"), " | ".join(allowed), repr(value))


@guarded
def search(
    experiment: str = typer.Argument("quickstart", help="Experiment YAML, or a shipped name (quickstart, t4_coco)."),
    trials: int | None = typer.Option(None, "--trials", help="Complete trials wanted (overrides the experiment)."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/NAME)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the search in --out after a crash or kill; trials left running are retried."
    ),
    executor: str | None = typer.Option(None, "--executor", help="local | ray"),
    workers: int | None = typer.Option(None, "--workers", help="Local processes sharing the storage."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (with --executor ray; default: a local Ray)."
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL (sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB; default RUN_DIR/study.db).",
    ),
    sampler: str | None = typer.Option(None, "--sampler", help=" | ".join(SAMPLERS)),
    seed: int | None = typer.Option(None, "--seed", help="Sampler seed (same seed, same sequence)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary document."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live display on stderr."),
) -> None:
    """Search the space for the latency/accuracy front and write the results into the run directory.

    Exit 2 when no trial meets the experiment's constraints (the results are written; the message names
    each limit and the best value reached), and for a used run directory without --resume.
    """
    from nasearch.app.search import Overrides, run_search
    from nasearch.search.results import preset_lines

    _check_choice(executor, ("local", "ray"), "--executor")
    _check_choice(sampler, SAMPLERS, "--sampler")
    check_positive(trials, "--trials")
    check_positive(workers, "--workers")
    ov = Overrides(
        trials=trials, sampler=sampler, executor=executor, workers=workers, address=address, seed=seed, storage=storage
    )
    doc = run_search(experiment, out, resume, ov, show_progress=not no_progress)
    if json_out:
        emit_json(doc)
        return
    _print_front(doc["front"], f"front of {doc['study']} (rung {doc['top_rung']})")
    counts = ", ".join(f"{v} {k}" for k, v in doc["trials"].items())
    log(
        f"{counts}; {len(doc['front'])} on the front; suite: "
        + ", ".join(f"{Path(s['file']).name} ({s['latency_ms']:.3g} ms)" for s in doc["suite"])
    )
    for line in preset_lines(doc["presets"]):
        log(line)
    log(
        f"results in {doc['run_dir']} (trials.csv, pareto.csv, pareto.png, hypervolume.csv, suite/) "
        f"after {doc['seconds']} s"
    )


@guarded
def pareto(
    run_dir: Path = typer.Argument(..., help="A search run directory."),
    json_out: bool = typer.Option(False, "--json", help="Print the front as one JSON list."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write the plot to this file."),
) -> None:
    """The front of a search (finished, running or interrupted), read from its study.

    The study is opened read-only; the run's result files are refreshed when the run directory is
    writable, and left as they are in an archived (read-only) run.
    """
    from nasearch.search.results import collect, front_doc, unmet_constraints, write_results
    from nasearch.search.study import RunInfo, load_study, quiet_optuna

    quiet_optuna()
    if not run_dir.is_dir():
        raise InputError(run_dir, "<dir>", "a search run directory", "no such directory")
    if plot is not None and not plot.parent.is_dir():  # a read command creates no folders
        raise InputError(plot, "--plot", "a file in an existing folder", f"no folder {plot.parent}")
    if plot is not None and plot.is_dir():
        raise InputError(plot, "--plot", "a file name for the plot", "a directory")
    info = RunInfo.load(run_dir)
    study = load_study(info.storage, info.study_name, readonly=True)
    res = write_results(study, run_dir) if writable_run(run_dir) else collect(study)
    if plot is not None:
        plot_front(res, plot)
    doc = front_doc(res, run_dir)
    unmet = unmet_constraints(res)
    if unmet:
        log(f"pareto: the front is empty: no trial met the constraints: {unmet}")
    if json_out:
        emit_json(doc)
        return
    _print_front(doc, f"front of {info.study_name} (rung {res.rung})")


def writable_run(run_dir: Path) -> bool:
    """Whether the run's result files can be refreshed in place (not an archived, read-only run)."""
    files = [run_dir, *(run_dir / n for n in ("trials.csv", "pareto.csv", "hypervolume.csv", "suite.csv"))]
    return all(os.access(f, os.W_OK) for f in files if f.exists())


def _print_front(doc: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in ("trial", "latency ms", "latency", "accuracy", "kind", "M params", "GFLOPs"):
        table.add_column(col)
    table.add_column("name", overflow="fold")
    for e in doc:
        table.add_row(
            str(e["trial"]),
            f"{e['latency_ms']:.4g}",
            "measured" if e.get("latency_measured") else "predicted",
            f"{e['accuracy']:.4g}",
            e["accuracy_kind"],
            f"{e['params'] / 1e6:.3f}",
            f"{e['gflops']:.3g}",
            e["name"],
        )
    console = Console()
    if not console.is_terminal:  # a log or a pipe: full names rather than rich's 80 columns
        console = Console(width=160)
    console.print(table)


def attach(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("pareto")(pareto)
