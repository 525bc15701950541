"""`nasearch data synth | info`."""

from __future__ import annotations

from dataclasses import asdict

import typer

from nasearch.cli.common import emit_json, guarded, log

data_app = typer.Typer(
    help="Detection datasets: the synthetic dataset and checks of existing ones.", no_args_is_help=True
)


@data_app.command("synth")
@guarded
def synth(
    out: str = typer.Option(..., "--out", help="Directory to write (new, empty, or an earlier synth)."),
    images: int = typer.Option(400, "--images", help="Number of images (85% train, 15% val)."),
    imgsz: int = typer.Option(320, "--imgsz", help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write the synthetic shapes dataset in COCO format (plus YOLO labels and a data.yaml)."""
    from nasearch.data.synth import generate_synthetic

    summary = generate_synthetic(out, images=images, imgsz=imgsz, seed=seed)
    log(
        f"synth: {summary.images} images ({summary.train_images} train, {summary.val_images} val) at "
        f"{summary.imgsz} px, {summary.boxes} boxes in {summary.classes} classes, box sides "
        f"{summary.box_side_min_px:g}-{summary.box_side_max_px:g} px, seed {summary.seed}, "
        f"{summary.seconds:.1f} s -> {summary.out}"
    )
    if json_out:
        emit_json(asdict(summary))


@data_app.command("trees")
@guarded
def trees(
    out: str = typer.Option(..., "--out", help="Directory to write (new, empty, or an earlier trees set)."),
    tile: int = typer.Option(128, "--tile", help="Tile side in pixels (native resolution, no resizing)."),
    overlap: int = typer.Option(0, "--overlap", help="Pixels shared by neighbouring tiles."),
    wheel: str | None = typer.Option(
        None, "--wheel", help="The deepforest-2.1.0 wheel (default: the installed deepforest 2.1.0 distribution)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write the trees data set (4 NEON aerial scenes, class `tree`) as YOLO tiles, split by scene."""
    from nasearch.data.trees import generate_trees

    s = generate_trees(out, tile=tile, overlap=overlap, wheel=wheel)
    log(
        f"trees: {s.train_tiles} train tiles ({len(s.train_scenes)} scenes), {s.val_tiles} val tiles "
        f"({', '.join(s.val_scenes)}) of {s.tile} px, overlap {s.overlap} px; {s.boxes_kept} of {s.boxes_total} "
        f"boxes kept ({s.boxes_dropped} dropped: less than half inside any tile), {s.box_instances} box "
        f"instances; {s.package} {s.version} ({s.licence}, wheel sha256 {s.wheel_sha256[:12]}...), "
        f"{s.seconds:.1f} s -> {s.out}"
    )
    if json_out:
        emit_json(asdict(s))


@data_app.command("info")
@guarded
def info(
    data: str = typer.Argument(..., help="Dataset directory, data.yaml or COCO json."),
    splits: str = typer.Option("train,val", "--splits", help="Comma-separated splits to read."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Read and validate a dataset; report images, boxes and boxes per class of each split."""
    from nasearch.data.images import check_split_images
    from nasearch.data.resolve import load_split

    report: dict[str, dict[str, object]] = {}
    for name in [s.strip() for s in splits.split(",") if s.strip()]:
        split = load_split(data, name)
        check_split_images(split)
        counts = split.class_counts().tolist()
        report[name] = {
            "format": split.fmt,
            "source": str(split.source),
            "images": len(split),
            "boxes": split.num_boxes(),
            "classes": split.nc,
            "class_names": list(split.class_names),
            "boxes_per_class": dict(zip(split.class_names, counts, strict=True)),
        }
    if json_out:
        emit_json({"data": data, "splits": report})
        return
    for name, s in report.items():
        typer.echo(
            f"{name}: {s['images']} images, {s['boxes']} boxes, {s['classes']} classes ({s['format']}: {s['source']})"
        )


def attach(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
