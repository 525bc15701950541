"""`nasearch quantize CKPT --data DATA --mode ptq|hybrid|qat [--max-drop 0.5] [--out DIR] [--json]`."""

from __future__ import annotations

from pathlib import Path

import typer

from nasearch.cli.common import emit_json, guarded
from nasearch.quant.logs import quiet_quantizer


def quantize(
    ckpt: str = typer.Argument(..., help="Checkpoint written by `nasearch train` (last.pt / best.pt)."),
    data: str = typer.Option(..., "--data", help="Dataset: val for mAP, train for calibration."),
    mode: str = typer.Option(..., "--mode", help="ptq | hybrid | qat."),
    max_drop: float = typer.Option(0.5, "--max-drop", help="hybrid: largest mAP50-95 drop allowed, in points."),
    out: str | None = typer.Option(None, "--out", help="Output directory (default CKPT_DIR/quant-MODE)."),
    target: str = typer.Option(
        "cpu",
        "--target",
        help="cpu (u8 activations, fastest on x86 ONNX Runtime) or tensorrt (symmetric s8 activations).",
    ),
    ops: str = typer.Option(
        "auto",
        "--ops",
        help="conv | conv+act (also SiLU's Sigmoid and Mul, faster on CPU, less accurate) | auto (conv).",
    ),
    calibration: str = typer.Option("minmax", "--calibration", help="minmax | entropy | percentile."),
    calib_images: int = typer.Option(128, "--calib-images", help="Training images used to calibrate."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: the training size)."),
    threads: int = typer.Option(1, "--threads", help="ONNX Runtime threads for the latency figures."),
    max_float: int | None = typer.Option(None, "--max-float", help="hybrid: at most this many float layers."),
    candidates: str | None = typer.Option(
        None, "--candidates", help="hybrid: comma-separated conv node names that may stay float (default: every conv)."
    ),
    qat_epochs: int = typer.Option(3, "--qat-epochs", help="qat: fine-tuning epochs."),
    qat_lr: float = typer.Option(1e-3, "--qat-lr", help="qat: initial learning rate (SGD, cosine)."),
    qat_batch: int = typer.Option(16, "--qat-batch", help="qat: batch size."),
    workers: int = typer.Option(2, "--workers", help="qat: data-loading processes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration choice and QAT."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """INT8 quantization to QDQ ONNX: post-training, hybrid (fewest float layers within --max-drop), or QAT."""
    from nasearch.app.quantize import QuantizeOptions, run_quantize
    from nasearch.space.memory import check_loader_workers

    check_loader_workers(workers)
    out_dir = Path(out) if out else Path(ckpt).parent / f"quant-{mode}"
    opts = QuantizeOptions(
        mode=mode,
        data=data,
        out=out_dir,
        max_drop=max_drop,
        target=target,
        method=calibration,
        ops=ops,
        calib_images=calib_images,
        imgsz=imgsz,
        threads=threads,
        max_float=max_float,
        candidates=tuple(c.strip() for c in candidates.split(",") if c.strip()) if candidates else None,
        qat_epochs=qat_epochs,
        qat_lr=qat_lr,
        qat_batch=qat_batch,
        workers=workers,
        seed=seed,
    )
    opts.check()
    with quiet_quantizer():
        doc = run_quantize(ckpt, opts)
    if json_out:
        emit_json(doc)
    else:
        typer.echo(
            f"mAP50-95 float {doc['map_float']:.3f} -> int8 {doc['map_int8']:.3f} (drop {doc['drop']:.3f}); "
            f"latency {doc['latency_float_ms']:.2f} -> {doc['latency_int8_ms']:.2f} ms (measured, ONNX Runtime "
            f"CPU); float layers: {', '.join(doc['float_layers']) or 'none'}"
        )


def attach(app: typer.Typer) -> None:
    app.command("quantize")(guarded(quantize))
