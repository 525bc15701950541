"""`nasearch proxy list | score`: the accuracy proxies of `nasearch.proxy`, by name."""

from __future__ import annotations

import math

import typer

from nasearch.cli.common import emit_json, guarded, log
from nasearch.errors import InputError

proxy_app = typer.Typer(
    help="Score architectures with accuracy proxies (zero-cost or short training).", no_args_is_help=True
)


def parse_budget(items: list[str]) -> dict[str, int | float]:
    """`KEY=VALUE` pairs; values are integers or floats."""
    budget: dict[str, int | float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError("--budget", "budget", "KEY=VALUE (e.g. epochs=3)", repr(item))
        try:
            value: int | float = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise InputError("--budget", key, "a number", repr(text)) from None
            if not math.isfinite(value):
                raise InputError("--budget", key, "a finite number", repr(text)) from None
        budget[key] = value
    return budget


@proxy_app.command("list")
@guarded
def list_proxies(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Every registered proxy, what its value means, and its budget keys with their defaults."""
    from nasearch.proxy import registry

    docs = [
        {
            "name": n,
            "kind": p.kind,
            "zero_cost": p.zero_cost,
            "needs_data": p.needs_data,
            "budget": p.budget_keys,
            "description": p.description,
        }
        for n, p in ((n, registry.get(n)) for n in registry.names())
    ]
    if json_out:
        emit_json(docs)
        return
    for d in docs:
        budget = ", ".join(f"{k}={v}" for k, v in d["budget"].items()) or "-"
        typer.echo(f"{d['name']:<12} {d['kind']:<16} budget: {budget}\n{'':<12} {d['description']}")


@proxy_app.command("score")
@guarded
def score(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    proxy: str = typer.Option(..., "--proxy", help="Proxy name (see `nasearch proxy list`)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the architecture's)."),
    nc: int | None = typer.Option(None, "--nc", help="Classes (default: the architecture's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialisation, inputs and training."),
    data: str | None = typer.Option(None, "--data", help="Dataset, for proxies that train."),
    budget: list[str] = typer.Option([], "--budget", help="KEY=VALUE, repeatable (e.g. epochs=3)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Score one architecture with one proxy (higher is better for every proxy)."""
    from nasearch.proxy import registry
    from nasearch.space import load_arch

    entry = registry.get(proxy)
    a = load_arch(arch)
    kwargs: dict = {"imgsz": imgsz, "seed": seed, "nc": nc, **parse_budget(budget)}
    if entry.needs_data:
        kwargs["data"] = data
    elif data is not None:
        log(f"note: {proxy} is zero-cost; --data is not used")
    result = registry.score(proxy, a, **kwargs)
    doc = {"name": a.name, "hash": a.hash, "proxy": proxy, **result.as_dict()}
    if json_out:
        emit_json(doc)
    else:
        typer.echo(f"{a.name}: {proxy} = {result.value:.6g} ({result.kind}, higher is better, {result.seconds:.2f} s)")


def attach(app: typer.Typer) -> None:
    app.add_typer(proxy_app, name="proxy")
