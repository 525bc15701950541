"""COCO json, Ultralytics data.yaml and the --data resolver read tiny datasets into the same records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasearch.data import coco_dict, load_coco, load_split, load_yolo, write_coco
from nasearch.data.yolo import label_path_for
from nasearch.errors import InputError


def write_image(
    path: Path, width: int, height: int, color: tuple[int, int, int] = (90, 90, 90), exif_orientation: int | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (width, height), color)
    if exif_orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, exif=exif)
    return path


def coco_doc() -> dict:
    """Two images (100x80 and 60x40); category ids 3 and 7 (not contiguous); one crowd region."""
    return {
        "images": [
            {"id": 11, "file_name": "a.jpg", "width": 100, "height": 80},
            {"id": 12, "file_name": "sub/b.png", "width": 60, "height": 40},
            {"id": 13, "file_name": "c.jpg", "width": 50, "height": 50},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 100, 80], "iscrowd": 0},
            {"id": 3, "image_id": 12, "category_id": 3, "bbox": [5.5, 6.5, 10, 4], "iscrowd": 0},
            {"id": 4, "image_id": 12, "category_id": 7, "bbox": [30, 10, 20, 20], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }


def write_coco_dataset(root: Path, doc: dict | None = None, split: str = "val") -> Path:
    """root/annotations/instances_<split>.json + root/images/<split>/...; returns the json path."""
    doc = coco_doc() if doc is None else doc
    for img in doc["images"]:
        write_image(root / "images" / split / img["file_name"], img["width"], img["height"])
    ann = root / "annotations" / f"instances_{split}.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(doc, indent=1))
    return ann


def write_yolo_dataset(root: Path) -> Path:
    """train: a folder of 3 images (one without a label file); val: a txt list; names as a dict."""
    write_image(root / "images" / "train" / "0007.jpg", 80, 60)
    write_image(root / "images" / "train" / "0009.png", 40, 40)
    write_image(root / "images" / "train" / "0010.jpg", 32, 32)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "0007.txt").write_text("1 0.5 0.5 0.25 0.5\n\n0 0.125 0.25 0.25 0.5\n")
    (root / "labels" / "train" / "0009.txt").write_text("2 0.1 0.1 0.6 0.2 0.3 0.5\n")  # polygon row
    write_image(root / "images" / "val" / "x.jpg", 64, 32)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "x.txt").write_text("0 0.5 0.5 1.0 1.0\n")
    (root / "val.txt").write_text("images/val/x.jpg\n")
    data = root / "data.yaml"
    data.write_text("train: images/train\nval: val.txt\nnames: {0: person, 1: car, 2: sign}\n")
    return data


def test_coco_reader_converts_boxes_classes_and_ids(tmp_path):
    ann = write_coco_dataset(tmp_path)
    split = load_coco(ann, tmp_path / "images" / "val")
    assert split.class_names == ("cat", "dog") and split.category_ids == (3, 7)
    assert [r.image_id for r in split.records] == [11, 12, 13]
    a, b, c = split.records
    assert (a.width, a.height) == (100, 80)
    np.testing.assert_allclose(a.boxes, [[10, 20, 40, 60], [0, 0, 100, 80]])
    assert a.classes.tolist() == [1, 0] and a.boxes.dtype == np.float32
    np.testing.assert_allclose(b.boxes, [[5.5, 6.5, 15.5, 10.5]])
    np.testing.assert_allclose(b.crowd_boxes, [[30, 10, 50, 30]])
    assert b.crowd_classes.tolist() == [1]
    assert len(c.boxes) == 0  # an image without annotations stays, as background
    assert split.num_boxes() == 3 and split.class_counts().tolist() == [2, 1]
    assert split.records[1].path == tmp_path / "images" / "val" / "sub" / "b.png"


def test_coco_write_read_round_trip(tmp_path):
    ann = write_coco_dataset(tmp_path)
    split = load_coco(ann, tmp_path / "images" / "val")
    out = tmp_path / "copy.json"
    write_coco(split, out, image_root=tmp_path / "images" / "val")
    again = load_coco(out, tmp_path / "images" / "val")
    assert again.class_names == split.class_names and again.category_ids == split.category_ids
    for r1, r2 in zip(split.records, again.records, strict=True):
        assert (r1.path, r1.image_id, r1.width, r1.height) == (r2.path, r2.image_id, r2.width, r2.height)
        np.testing.assert_allclose(r1.boxes, r2.boxes, atol=0.01)
        np.testing.assert_array_equal(r1.classes, r2.classes)
        np.testing.assert_allclose(r1.crowd_boxes, r2.crowd_boxes, atol=0.01)
    gt = coco_dict(split)
    assert sum(a["iscrowd"] for a in gt["annotations"]) == 1
    assert {a["category_id"] for a in gt["annotations"]} == {3, 7}


def test_yolo_reader_folder_split(tmp_path):
    data = write_yolo_dataset(tmp_path)
    split = load_yolo(data, "train")
    assert split.class_names == ("person", "car", "sign") and split.fmt == "yolo"
    assert [r.path.name for r in split.records] == ["0007.jpg", "0009.png", "0010.jpg"]
    assert [r.image_id for r in split.records] == [7, 9, 10]  # numeric stems become COCO image ids
    first, poly, empty = split.records
    assert (first.width, first.height) == (80, 60)
    np.testing.assert_allclose(first.boxes, [[30, 15, 50, 45], [0, 0, 20, 30]], atol=1e-4)
    assert first.classes.tolist() == [1, 0]
    np.testing.assert_allclose(poly.boxes, [[4, 4, 24, 20]], atol=1e-4)  # bounds of the polygon
    assert poly.classes.tolist() == [2]
    assert len(empty.boxes) == 0


def test_yolo_reader_txt_list_split_and_list_names(tmp_path):
    data = write_yolo_dataset(tmp_path)
    data.write_text("path: .\ntrain: images/train\nval: val.txt\nnc: 3\nnames: [person, car, sign]\n")
    split = load_yolo(data, "val")
    assert len(split) == 1 and split.records[0].path == tmp_path / "images" / "val" / "x.jpg"
    np.testing.assert_allclose(split.records[0].boxes, [[0, 0, 64, 32]])
    assert split.records[0].image_id == 1  # non-numeric stem: ids are 1..N


def test_yolo_exif_rotated_image_has_upright_size(tmp_path):
    write_image(tmp_path / "images" / "t" / "r.jpg", 40, 20, exif_orientation=6)
    (tmp_path / "labels" / "t").mkdir(parents=True)
    (tmp_path / "labels" / "t" / "r.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "d.yaml").write_text("train: images/t\nnames: [a]\n")
    record = load_yolo(tmp_path / "d.yaml", "train").records[0]
    assert (record.width, record.height) == (20, 40)
    np.testing.assert_allclose(record.boxes, [[5, 10, 15, 30]])


def test_label_path_replaces_last_images_folder():
    label = label_path_for(Path("/d/images/x/images/train/a.b.jpg"))
    assert label == Path("/d/images/x/labels/train/a.b.txt")


def test_resolver_forms(tmp_path):
    ann = write_coco_dataset(tmp_path / "coco")
    by_dir = load_split(tmp_path / "coco", "val")
    by_json = load_split(ann, "val")
    assert [r.path for r in by_dir.records] == [r.path for r in by_json.records]
    assert by_json.records[0].path.parent == tmp_path / "coco" / "images" / "val"
    data = write_yolo_dataset(tmp_path / "yolo")
    by_yaml = load_split(data, "train")
    by_yolo_dir = load_split(tmp_path / "yolo", "train")
    assert by_yaml.fmt == by_yolo_dir.fmt == "yolo" and len(by_yaml) == len(by_yolo_dir) == 3


def test_resolver_coco2017_layout(tmp_path):
    root = tmp_path / "coco"
    doc = coco_doc()
    for img in doc["images"]:
        write_image(root / "val2017" / img["file_name"], img["width"], img["height"])
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    split = load_split(root, "val")
    assert len(split) == 3 and split.records[0].path == root / "val2017" / "a.jpg"


def test_subset_keeps_classes_and_ids(tmp_path):
    split = load_coco(write_coco_dataset(tmp_path), tmp_path / "images" / "val")
    sub = split.subset([2, 0])
    assert [r.image_id for r in sub.records] == [13, 11] and sub.category_ids == split.category_ids
    assert len(split.head(2)) == 2 and len(split.head(10)) == 3


def test_resolver_rejects_unknown_forms(tmp_path):
    with pytest.raises(InputError, match="no such path"):
        load_split(tmp_path / "missing", "val")
    with pytest.raises(InputError, match="neither"):
        load_split(tmp_path, "val")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match=r"a \.csv file"):
        load_split(tmp_path / "x.csv", "val")
