"""The `--data` option of every command: a dataset directory, a data.yaml, or a COCO json, to one split.

Resolution order:
- a `.json` file: a COCO json (the one file serves every split); images in the first existing of
  `<root>/images/<stem>`, `<root>/<stem>`, `<root>/images`, `<json dir>/images`, else `<json dir>`, where
  `<stem>` is the json name without `instances_` and `<root>` the folder above `annotations/`;
- a `.yaml`/`.yml` file: a data.yaml; when it has `annotations: {split: instances_x.json}` (as written by
  `nasearch data synth`) the COCO json is read for that split, else the YOLO txt labels;
- a directory: its `data.yaml` if present, else `annotations/instances_<split>[2017].json` with images in
  `images/<split>[2017]` or `<split>[2017]`.
"""

from __future__ import annotations

from pathlib import Path

from nasearch import yamlio
from nasearch.data.coco import load_coco
from nasearch.data.records import DetectionSplit
from nasearch.data.yolo import dataset_root, load_yolo
from nasearch.errors import InputError, describe

EXPECTED = "a dataset directory, a data.yaml or a COCO json"


def _coco_image_dir(ann_file: Path) -> Path:
    stem = ann_file.stem.removeprefix("instances_")
    root = ann_file.parent.parent if ann_file.parent.name == "annotations" else ann_file.parent
    candidates = [root / "images" / stem, root / stem, root / "images", ann_file.parent / "images"]
    return next((c for c in candidates if c.is_dir()), ann_file.parent)


def _from_yaml(file: Path, split: str) -> DetectionSplit:
    data = yamlio.load_mapping(file)
    annotations = data.get("annotations")
    if annotations is None:
        return load_yolo(file, split)
    if not isinstance(annotations, dict):
        raise InputError(file, "annotations", "a mapping split: COCO json path", describe(annotations))
    if not isinstance(annotations.get(split), str):
        found = describe(annotations[split]) if split in annotations else "missing"
        raise InputError(file, f"annotations.{split}", "the path of a COCO json", found)
    images = data.get(split)
    if not isinstance(images, str):
        raise InputError(file, split, "the image directory of the split", describe(images))
    root = dataset_root(data, file)
    return load_coco(root / annotations[split], root / images, name=split)


def _from_directory(directory: Path, split: str) -> DetectionSplit:
    for name in ("data.yaml", "data.yml"):
        if (directory / name).is_file():
            return _from_yaml(directory / name, split)
    for stem in (split, f"{split}2017"):
        ann = directory / "annotations" / f"instances_{stem}.json"
        if ann.is_file():
            for images in (directory / "images" / stem, directory / stem):
                if images.is_dir():
                    return load_coco(ann, images, name=split)
            raise InputError(directory, stem, f"an image folder images/{stem} or {stem} beside annotations/", "none")
    inside = f"data.yaml or annotations/instances_{split}.json inside"
    raise InputError(directory, "<file>", f"{EXPECTED} ({inside})", "neither")


def load_split(spec: str | Path, split: str = "val") -> DetectionSplit:
    """Resolve a dataset spec (`--data`) to one split; any problem is an InputError naming the file."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(spec, "<file>", EXPECTED, "no such path")
    if path.is_dir():
        return _from_directory(path, split)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_coco(path, _coco_image_dir(path), name=split)
    if suffix in (".yaml", ".yml"):
        return _from_yaml(path, split)
    raise InputError(spec, "<file>", EXPECTED, f"a {suffix or 'suffix-less'} file")
