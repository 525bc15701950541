"""Entry point: assembles the command groups into one typer app."""

from __future__ import annotations

import os
import sys

import typer

from nasearch.cli.common import DEBUG_ENV

app = typer.Typer(
    name="nasearch",
    help="Hardware-aware neural architecture search for real-time object detectors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors."),
    max_memory: float | None = typer.Option(
        None, "--max-memory", metavar="GB", help="Memory a model may need (default: what is free now)."
    ),
    no_memory_guard: bool = typer.Option(
        False, "--no-memory-guard", help="Build models without checking their memory first."
    ),
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
    if max_memory is None and not no_memory_guard:
        return
    from nasearch.space.memory import GUARD_ENV  # the guard's module loads torch: only when the option is given

    if max_memory is not None:
        if not max_memory > 0:
            print(
                f"error: --max-memory: max_memory: expected a positive number of GB, found {max_memory}",
                file=sys.stderr,
            )
            raise typer.Exit(2)
        os.environ[GUARD_ENV] = str(max_memory)
    if no_memory_guard:
        os.environ[GUARD_ENV] = "off"


def _mount() -> None:
    """Attach every command group module that exists (each registers itself on `app`)."""
    import importlib
    import pkgutil

    from nasearch import cli

    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda i: i.name):
        if info.name.endswith("_cmd"):
            module = importlib.import_module(f"nasearch.cli.{info.name}")
            module.attach(app)


_mount()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
