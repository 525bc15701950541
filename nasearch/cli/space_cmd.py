"""`nasearch space info | sample | contains`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from nasearch.cli.common import emit_json, guarded
from nasearch.errors import InputError

space_app = typer.Typer(help="Inspect and sample search spaces.", no_args_is_help=True)


@space_app.command("info")
@guarded
def info(
    space: Path = typer.Argument(..., help="Search-space YAML, or a shipped space's name."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Size of the space, its decisions, and which presets lie inside it."""
    from nasearch.space import load_space

    s = load_space(space)
    decisions = s.decisions()
    fraction = s.feasible_fraction()
    doc = {
        "name": s.name,
        "decisions": len(decisions),
        "cardinality_log10": s.cardinality_log10(),
        "feasible_fraction": round(fraction, 4),
        "feasible_cardinality_log10": round(s.cardinality_log10() + _log10(fraction), 3),
        "constraints": len(s.constraints),
        "presets_inside": s.presets_inside(),
    }
    if json_out:
        emit_json(doc)
        return
    table = Table(title=f"space {s.name}", show_header=False)
    for key, value in doc.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    Console().print(table)


def _log10(x: float) -> float:
    import math

    return math.log10(x) if x > 0 else float("-inf")


@space_app.command("sample")
@guarded
def sample(
    space: Path = typer.Argument(..., help="Search-space YAML, or a shipped space's name."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same architecture)."),
    out: Path | None = typer.Option(None, "--out", help="Write the architecture YAML here."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Draw one architecture that satisfies the space's constraints."""
    from nasearch.space import load_space

    if out is not None and out.is_dir():
        raise InputError(out, "--out", "a file path", "a directory")
    if out is not None and out.exists() and not force:
        raise InputError(out, "--out", "a new file (or --force to overwrite it)", "an existing file")
    arch = load_space(space).sample(seed)
    if out:
        arch.save(out)
        typer.echo(f"wrote {out} ({arch.name}, hash {arch.hash})", err=True)
    else:
        typer.echo(arch.dumps(), nl=False)


@space_app.command("contains")
@guarded
def contains(
    space: Path = typer.Argument(..., help="Search-space YAML, or a shipped space's name."),
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Whether an architecture is a point of the space, and if not, why."""
    from nasearch.space import load_arch, load_space

    inside, reason = load_space(space).contains(load_arch(arch))
    if json_out:
        emit_json({"inside": inside, "reason": reason})
    else:
        typer.echo(f"{'inside' if inside else 'outside'}: {reason}")


def attach(app: typer.Typer) -> None:
    app.add_typer(space_app, name="space")
