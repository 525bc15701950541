"""`nasearch evaluate MODEL --data DATA`: COCO mAP of a checkpoint or an ONNX file on a dataset split."""

from __future__ import annotations

from pathlib import Path

import typer

from nasearch.cli.common import emit_json, guarded, log
from nasearch.errors import InputError


def _checkpoint_imgsz(ckpt: dict, arch_imgsz: int) -> int:
    """The size the checkpoint was trained at (its train_args), else its architecture's."""
    args = ckpt.get("train_args")
    size = args.get("imgsz") if isinstance(args, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) else arch_imgsz


@guarded
def evaluate(
    model: str = typer.Argument(..., help="A training checkpoint (.pt) or an ONNX file (.onnx)."),
    data: str = typer.Option(..., "--data", help="Dataset directory, data.yaml or COCO json."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Input size (default: checkpoint or ONNX input)."),
    batch: int = typer.Option(16, "--batch", help="Images per inference batch."),
    split: str = typer.Option("val", "--split", help="Which split of the dataset to score."),
    conf: float = typer.Option(0.001, "--conf", help="Minimum score of a detection."),
    iou: float = typer.Option(0.7, "--iou", help="NMS IoU threshold."),
    workers: int = typer.Option(0, "--workers", help="Data-loading worker processes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """COCO mAP50-95 and mAP50 (percent points) of a model on a dataset split."""
    from nasearch.data.resolve import load_split
    from nasearch.eval import NMSConfig, evaluate_model

    if not 0.0 <= conf < 1.0:
        raise InputError("--conf", "conf", "a score threshold in [0, 1)", str(conf))
    if not 0.0 < iou <= 1.0:
        raise InputError("--iou", "iou", "an IoU threshold in (0, 1]", str(iou))
    nms = NMSConfig(conf=conf, iou=iou)
    from nasearch.space.memory import check_loader_workers

    check_loader_workers(workers)
    dataset = load_split(data, split)
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        result = evaluate_model(path, dataset, imgsz, batch, nms, workers)
    else:
        from nasearch.train.checkpoint import load_checkpoint

        detector, arch, ckpt = load_checkpoint(path)
        if detector.nc != dataset.nc:
            raise InputError(
                data, "categories", f"{detector.nc} classes (as the checkpoint {path.name})", f"{dataset.nc} classes"
            )
        size = imgsz or _checkpoint_imgsz(ckpt, int(arch.data["imgsz"]))
        result = evaluate_model(detector, dataset, size, batch, nms, workers)
    doc = {**result.as_dict(), "split": split, "model": str(path)}
    log(f"evaluate: {result.images} images at {result.imgsz} px in {result.seconds:.1f} s")
    if json_out:
        emit_json(doc)
    else:
        typer.echo(f"mAP50-95 {result.map:.2f}  mAP50 {result.map50:.2f}  ({result.images} images, {split})")


def attach(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
