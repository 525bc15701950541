"""`nasearch model info | verify`."""

from __future__ import annotations

import typer

from nasearch.cli.common import emit_json, guarded
from nasearch.validation import check_imgsz, check_positive

model_app = typer.Typer(help="Inspect compiled architectures.", no_args_is_help=True)

VERIFY_TOLERANCE = 1e-3


@model_app.command("info")
@guarded
def info(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the architecture's)."),
    nc: int | None = typer.Option(None, "--nc", help="Number of classes (default: the architecture's)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Parameters and GFLOPs, in training form and after fusion."""
    import torch

    from nasearch.nn.inspect import count_flops, count_params, fused_copy
    from nasearch.space import build_model, load_arch
    from nasearch.space.memory import GB, available_bytes, estimate

    check_imgsz(imgsz)
    check_positive(nc, "--nc")
    a = load_arch(arch).with_overrides(imgsz=imgsz, nc=nc)
    size = a.data["imgsz"]
    with torch.device("meta"):  # counting needs shapes only: no weight initialisation, no arithmetic
        model = build_model(a).eval()
        fused = fused_copy(model)
    doc = {
        "name": a.name,
        "hash": a.hash,
        "imgsz": size,
        "nc": a.data["nc"],
        "params": count_params(model),
        "params_fused": count_params(fused),
        "gflops": round(count_flops(model, size) / 1e9, 3),
        "gflops_fused": round(count_flops(fused, size) / 1e9, 3),
    }
    est = estimate(a, size)  # reported, not enforced: info allocates nothing
    doc["memory_gb"] = {
        "weights": round(est.weights_bytes / GB, 3),
        "inference": round(est.inference_bytes() / GB, 3),
        "training_batch_1": round(est.training_bytes(1) / GB, 3),
        "available": round(available_bytes() / GB, 3),
    }
    if json_out:
        emit_json(doc)
    else:
        for key, value in doc.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v:g} GB" for k, v in value.items())
            typer.echo(f"{key:>13}: {value:,}" if isinstance(value, int) else f"{key:>13}: {value}")


@model_app.command("verify")
@guarded
def verify(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    imgsz: int = typer.Option(256, "--imgsz", help="Input size of the check."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, BN statistics and input."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Training form against fused form on the same input (random weights and BN statistics, eval mode)."""
    import torch

    from nasearch.nn.inspect import fusion_max_abs_diff, randomize_bn
    from nasearch.space import build_model, load_arch
    from nasearch.space.memory import require

    check_imgsz(imgsz)
    a = load_arch(arch)
    require(a, imgsz=imgsz, copies=2)  # the model and its fused copy, refused before either is allocated
    torch.manual_seed(seed)
    model = randomize_bn(build_model(a), seed).eval()
    model.export_raw = True
    x = torch.randn(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed))
    diff = fusion_max_abs_diff(model, x)
    doc = {
        "name": a.name,
        "imgsz": imgsz,
        "max_abs_diff": diff,
        "tolerance": VERIFY_TOLERANCE,
        "ok": diff <= VERIFY_TOLERANCE,
    }
    if json_out:
        emit_json(doc)
    else:
        typer.echo(f"{a.name}: max |training − fused| = {diff:.3g} ({'ok' if doc['ok'] else 'FAILED'})")
    if not doc["ok"]:
        raise typer.Exit(1)


def attach(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
