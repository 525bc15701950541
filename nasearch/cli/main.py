"""Entry point: assembles the command groups into one typer app."""

from __future__ import annotations

import os

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
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors.")) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


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
