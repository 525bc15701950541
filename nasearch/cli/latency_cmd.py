"""`nasearch latency measure | profile | predict | info`: every figure says measured or predicted."""

from __future__ import annotations

import typer

from nasearch.cli.common import emit_json, guarded, log
from nasearch.errors import InputError
from nasearch.validation import check_imgsz, check_positive

latency_app = typer.Typer(help="Measure, profile and predict latency.", no_args_is_help=True)

BACKEND_HELP = "onnxruntime (default; CPU here), torch, or tensorrt (NVIDIA GPU)."
TARGETS = ("t4-tensorrt",)


def _default_precision(backend: str, precision: str | None) -> str:
    return precision or ("fp16" if backend == "tensorrt" else "fp32")


QUICK_HELP = "Fewer timed runs (smoke tests; noisier figures)."


def _backend(name: str, precision: str | None, batch: int, threads: int, clock: str, quick: bool = False):
    from nasearch.latency.backend import get_backend

    check_positive(batch, "--batch")
    check_positive(threads, "--threads")
    from nasearch.latency.stats import QUICK, TimingPolicy  # numpy: imported by the commands that time

    policy = QUICK if quick else TimingPolicy()
    return get_backend(name, _default_precision(name, precision), batch, threads, policy, clock=clock)


def _progress_bar(enabled: bool):
    """A rich progress bar on stderr, driven by `(label, done, total)` calls."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not enabled:
        return None, None
    bar = Progress(
        TextColumn("{task.description:<40.40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task("planning", total=None)

    def update(label: str, done: int, total: int) -> None:
        bar.update(task, description=label, completed=done, total=total)

    return bar, update


@latency_app.command("measure")
@guarded
def measure(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    backend: str = typer.Option("onnxruntime", "--backend", help=BACKEND_HELP),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32 | fp16 | int8 (default fp32; fp16 for tensorrt)."
    ),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the architecture's)."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    threads: int = typer.Option(1, "--threads", help="CPU threads of the runtime (recorded in the fingerprint)."),
    clock: str = typer.Option(
        "auto",
        "--clock",
        help="auto | wall | cpu (auto: the thread's CPU time with one CPU thread, else wall clock).",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        help="Also store this whole-network measurement in a latency database (for the overhead fit).",
    ),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Measure an architecture's latency end to end (fused deploy form, static shapes)."""
    import torch

    from nasearch.latency.profile import measure_network
    from nasearch.nn.inspect import fused_copy
    from nasearch.space import build_model, load_arch
    from nasearch.space.memory import require

    check_imgsz(imgsz)
    a = load_arch(arch)
    size = imgsz or a.data["imgsz"]
    a = a if size == a.data["imgsz"] else a.with_overrides(imgsz=size)
    require(a, batch=batch, imgsz=size, copies=2)  # the model and its fused copy
    be = _backend(backend, precision, batch, threads, clock, quick)
    fp = be.fingerprint()
    log(f"measuring {a.name} at {size} px with {fp.label()}")
    if db:
        from nasearch.latency.db import LatencyDB  # numpy: only commands that read a database load it

        with LatencyDB(db) as database:
            database.add_fingerprint(fp)
            measure_network(a, size, be, database, fp.id)
            row = next(r for r in database.networks(fp.id) if r.arch_hash == a.hash and r.imgsz == size)
        median, p10, p90, runs, stable = row.median_ms, row.p10_ms, row.p90_ms, row.runs, None
    else:
        torch.manual_seed(0)
        timing = be.measure_model(fused_copy(build_model(a)), size)
        median, p10, p90, runs, stable = (
            timing.median_ms,
            timing.p10_ms,
            timing.p90_ms,
            timing.runs,
            timing.stable,
        )
    doc = {
        "backend": backend,
        "device": fp.device,
        "precision": fp.precision,
        "imgsz": size,
        "batch": batch,
        "median_ms": round(median, 6),
        "p10_ms": round(p10, 6),
        "p90_ms": round(p90, 6),
        "runs": runs,
        "measured": True,
        "name": a.name,
        "arch_hash": a.hash,
        "threads": threads,
        "clock": fp.clock,
        "provider": fp.provider,
        "fingerprint_id": fp.id,
    }
    if stable is not None:
        doc["stable"] = stable
    if json_out:
        emit_json(doc)
    else:
        typer.echo(
            f"{a.name}: measured {median:.3f} ms median (p10 {p10:.3f}, p90 {p90:.3f}, {runs} runs) on {fp.label()}"
        )


@latency_app.command("profile")
@guarded
def profile(
    space: str = typer.Argument(..., help="Search space YAML."),
    backend: str = typer.Option("onnxruntime", "--backend", help=BACKEND_HELP),
    db: str = typer.Option(..., "--db", help="Latency database file (created if missing)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the space's)."),
    precision: str | None = typer.Option(None, "--precision", help="fp32 | fp16 | int8."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    threads: int = typer.Option(1, "--threads", help="CPU threads of the runtime."),
    clock: str = typer.Option("auto", "--clock", help="auto | wall | cpu."),
    max_archs: int = typer.Option(
        48,
        "--max-archs",
        help="Enumerate the space when it has at most this many architectures, else sample this many.",
    ),
    networks: int = typer.Option(8, "--networks", help="Whole networks to measure for the overhead fit."),
    seed: int = typer.Option(0, "--seed", help="Seed of the architecture sample."),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Measure every distinct block signature of a space into a latency database (resumes by itself)."""
    from nasearch.latency.profile import profile_space
    from nasearch.space import load_space

    check_imgsz(imgsz)
    check_positive(max_archs, "--max-archs")
    if networks < 0:
        raise InputError("--networks", "networks", "zero or more", str(networks))
    sp = load_space(space)
    space_size = sp.tree.get("imgsz")
    size = imgsz or (space_size if isinstance(space_size, int) else None)
    if size is None:
        raise InputError(space, "imgsz", "a fixed input size in the space, or --imgsz", repr(space_size))
    be = _backend(backend, precision, batch, threads, clock, quick)
    log(f"profiling {sp.name} at {size} px with {be.fingerprint().label()} into {db}")
    bar, update = _progress_bar(True)
    from nasearch.latency.db import LatencyDB  # numpy: only commands that read a database load it

    with LatencyDB(db) as database:
        if bar is not None:
            with bar:
                report = profile_space(sp, be, database, size, max_archs, networks, seed, progress=update)
        else:
            report = profile_space(sp, be, database, size, max_archs, networks, seed)
    doc = report.as_dict()
    if json_out:
        emit_json(doc)
    else:
        typer.echo(
            f"{report.space}: {report.signatures} distinct blocks ({report.measured_now} measured now, "
            f"{report.already_in_db} already stored), {report.networks_in_db} whole networks stored; "
            f"coverage {100 * report.coverage:.1f}% ({report.coverage_method}); {report.seconds:.0f} s"
        )


@latency_app.command("predict")
@guarded
def predict(
    arch: str = typer.Argument(..., help="Architecture YAML or preset name."),
    db: str | None = typer.Option(None, "--db", help="Latency database to predict from."),
    target: str | None = typer.Option(None, "--target", help="A modelled device: t4-tensorrt."),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32 | fp16 | int8 (default fp32; fp16 for --target and --backend tensorrt)."
    ),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the architecture's)."),
    batch: int = typer.Option(1, "--batch", help="Batch size."),
    backend: str | None = typer.Option(
        None, "--backend", help="Which stored backend (when the database holds several)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Which stored thread count."),
    clock: str = typer.Option("auto", "--clock", help="auto | wall | cpu (the clock of this machine's figures)."),
    missing: str = typer.Option(
        "auto",
        "--missing",
        help="Blocks the database lacks: measure (this machine only), estimate (from the measured blocks), "
        "error, or auto (measure when the database is this machine's, else estimate).",
    ),
    float_layers: str | None = typer.Option(
        None,
        "--float-layers",
        help="With --target and --precision int8: convolutions kept in FP16 (hybrid INT8), comma-separated "
        "ONNX node names or module paths, or a `nasearch quantize` report (quantize.json) to read them from.",
    ),
    quick: bool = typer.Option(False, "--quick", help=QUICK_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Predict an architecture's latency from a latency database or a device model."""
    from nasearch.space import load_arch

    check_imgsz(imgsz)
    check_positive(batch, "--batch")
    if (db is None) == (target is None):
        raise InputError(
            "<arguments>",
            "--db/--target",
            "exactly one of --db DB or --target t4-tensorrt",
            "both" if db else "neither",
        )
    a = load_arch(arch)
    size = imgsz or a.data["imgsz"]
    if float_layers is not None and target is None:
        raise InputError("--float-layers", "float_layers", "only with --target t4-tensorrt", "--db")
    if target is not None:
        doc = _predict_target(target, a, precision or "fp16", size, batch, _float_layers(float_layers))
    else:
        doc = _predict_db(
            db or "",
            a,
            _default_precision(backend or "onnxruntime", precision),
            size,
            batch,
            backend,
            threads,
            clock,
            missing,
            quick,
        )
    if json_out:
        emit_json(doc)
    else:
        typer.echo(
            f"{a.name}: predicted {doc['predicted_ms']:.3f} ms ({doc['method']}, {doc['target']}, "
            f"{doc.get('mode', doc['precision'])}, {doc['imgsz']} px, batch {doc['batch']})"
        )


def _float_layers(value: str | None) -> list[str]:
    """Names given inline, or the `float_layers` of a quantize report when `value` is a JSON file."""
    if value is None:
        return []
    if value.endswith(".json"):
        import json
        from pathlib import Path

        path = Path(value)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(value, "<file>", "a quantize report (quantize.json)", "no such file") from None
        except (OSError, ValueError) as exc:
            raise InputError(value, "<file>", "a JSON quantize report", type(exc).__name__) from None
        layers = doc.get("float_layers") if isinstance(doc, dict) else None
        if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
            raise InputError(value, "float_layers", "a list of layer names", type(layers).__name__)
        return layers
    return [n.strip() for n in value.split(",") if n.strip()]


def _predict_target(
    target: str, arch, precision: str, imgsz: int, batch: int, float_layers: list[str] | None = None
) -> dict:
    if target not in TARGETS:
        raise InputError("--target", "target", " | ".join(TARGETS), repr(target))
    try:
        from nasearch.latency.t4_model import predict_t4
    except ImportError as exc:
        raise InputError(
            "--target",
            "target",
            "an installed T4 TensorRT model (nasearch/latency/t4_model.py)",
            f"it is missing ({exc})",
        ) from None
    doc = dict(predict_t4(arch, precision, imgsz, batch, float_layers or ()))
    doc["measured"] = False
    return doc


def _predict_db(
    db: str,
    arch,
    precision: str,
    imgsz: int,
    batch: int,
    backend: str | None,
    threads: int | None,
    clock: str,
    missing: str,
    quick: bool,
) -> dict:
    from nasearch.latency.predict import predict_latency

    return predict_latency(
        db,
        arch,
        imgsz,
        lambda: _backend(backend or "onnxruntime", precision, batch, threads or 1, clock, quick),
        precision,
        batch,
        backend,
        threads,
        missing,
    )


@latency_app.command("info")
@guarded
def info(
    db: str = typer.Argument(..., help="Latency database file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """What a latency database holds: fingerprints, block and network counts, the overhead fits."""
    from nasearch.latency.db import LatencyDB  # numpy: only commands that read a database load it
    from nasearch.latency.predict import overhead_for

    with LatencyDB(db, create=False) as database:
        rows = [
            {
                "fingerprint_id": fp.id,
                "fingerprint": fp.as_dict(),
                "device": fp.label(),
                "units": nu,
                "networks": nn,
                "overhead": overhead_for(database, fp.id).as_dict(),
            }
            for fp, nu, nn in database.fingerprints()
        ]
        doc = {"db": db, "integrity": database.integrity(), "fingerprints": rows}
    if json_out:
        emit_json(doc)
    else:
        for row in rows:
            typer.echo(f"{row['fingerprint_id']}: {row['device']}: {row['units']} blocks, {row['networks']} networks")


def attach(app: typer.Typer) -> None:
    app.add_typer(latency_app, name="latency")
