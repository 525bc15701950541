"""`nasearch export (RUN_DIR --trial N | ARCH.yaml | CKPT) --format yaml,torch,onnx,onnx-int8,engine --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from nasearch.cli.common import emit_json, guarded
from nasearch.errors import InputError
from nasearch.onnxio.spec import CALIBRATION_METHODS
from nasearch.quant.logs import quiet_quantizer
from nasearch.validation import check_positive


def export(
    source: str = typer.Argument(
        ..., help="A search RUN_DIR (with --trial N), an architecture YAML or preset, or a checkpoint (.pt)."
    ),
    trial: int | None = typer.Option(None, "--trial", help="Trial number in RUN_DIR."),
    formats: str = typer.Option(
        "yaml,torch,onnx", "--format", help="Comma-separated: yaml, torch, onnx, onnx-int8, engine."
    ),
    out: str = typer.Option(..., "--out", help="Output directory."),
    imgsz: int | None = typer.Option(
        None, "--imgsz", help="Input size (default: the training size or the architecture's)."
    ),
    batch: int = typer.Option(1, "--batch", help="Static batch size of the exported graphs."),
    nms: bool = typer.Option(
        False, "--nms", help="Also write NAME.nms.onnx with NMS in the graph (output detections [K, 7])."
    ),
    conf: float = typer.Option(0.25, "--conf", help="--nms: minimum class score."),
    iou: float = typer.Option(0.7, "--iou", help="--nms: IoU above which a box of the same class is dropped."),
    max_det: int = typer.Option(300, "--max-det", help="--nms: most detections kept."),
    data: str | None = typer.Option(
        None, "--data", help="Dataset: INT8 calibration images (onnx-int8) and a real verification image."
    ),
    calib_images: int = typer.Option(128, "--calib-images", help="onnx-int8: calibration images."),
    calibration: str = typer.Option("minmax", "--calibration", help="onnx-int8: minmax | entropy | percentile."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="onnx-int8: cpu (u8 activations) or tensorrt "
        "(s8); default tensorrt when an engine is asked for, else cpu.",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (at least 17)."),
    seed: int = typer.Option(0, "--seed", help="Seed of untrained weights and of the calibration choice."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as one JSON document."),
) -> None:
    """Export the architecture, weights, ONNX (fused, checked against PyTorch), INT8 QDQ ONNX, TensorRT engine."""
    from nasearch.app.export import ExportOptions, export, parse_formats, resolve_source

    chosen = parse_formats(formats)
    if opset < 17:
        raise InputError("--opset", "opset", "17 or more", str(opset))
    check_positive(batch, "--batch")
    if not 0 <= conf < 1 or not 0 < iou <= 1 or max_det < 1:
        raise InputError(
            "--conf/--iou/--max-det", "nms", "conf in [0, 1), iou in (0, 1], max-det >= 1", f"{conf}, {iou}, {max_det}"
        )
    if calibration not in CALIBRATION_METHODS:
        raise InputError("--calibration", "calibration", " | ".join(CALIBRATION_METHODS), repr(calibration))
    if target not in (None, "cpu", "tensorrt"):
        raise InputError("--target", "target", "cpu | tensorrt", repr(target))
    check_positive(calib_images, "--calib-images", "calib_images")
    opts = ExportOptions(
        chosen, Path(out), imgsz, batch, nms, conf, iou, max_det, data, calib_images, calibration, target, opset, seed
    )
    src = resolve_source(source, trial, seed)
    with quiet_quantizer():
        manifest = export(src, opts)
    if json_out:
        emit_json(manifest)
    else:
        for fmt, entry in manifest["files"].items():
            typer.echo(f"{fmt:>10}: {entry['path']}")


def attach(app: typer.Typer) -> None:
    app.command("export")(guarded(export))
