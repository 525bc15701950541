"""Broken datasets end in exit 2 with one `error: FILE: record: expected …, found …` line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import load_split, make_loader
from nasearch.errors import InputError
from tests.test_data_readers import coco_doc, write_coco_dataset, write_yolo_dataset

runner = CliRunner()


def _one_error_line(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: ") and "expected" in lines[0] and "found" in lines[0]
    return lines[0]


COCO_CASES = {
    "box_outside": (
        lambda d: d["annotations"][0].update(bbox=[90, 20, 30, 40]),
        "annotations[0].bbox",
        "inside the 100x80 image",
    ),
    "zero_width": (
        lambda d: d["annotations"][2].update(bbox=[5, 5, 0, 4]),
        "annotations[2].bbox",
        "positive width and height",
    ),
    "negative_height": (
        lambda d: d["annotations"][1].update(bbox=[5, 5, 4, -2]),
        "annotations[1].bbox",
        "positive width and height",
    ),
    "unknown_category": (
        lambda d: d["annotations"][1].update(category_id=5),
        "annotations[1].category_id",
        "one of the category ids [3, 7]",
    ),
    "unknown_image": (
        lambda d: d["annotations"][3].update(image_id=99),
        "annotations[3].image_id",
        "the id of an entry in images",
    ),
    "bad_bbox": (
        lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
        "annotations[0].bbox",
        "[x, y, width, height] numbers",
    ),
    "empty_split": (lambda d: d.update(images=[], annotations=[]), "images", "at least one image"),
    "duplicate_image_id": (lambda d: d["images"][1].update(id=11), "images[1].id", "a unique image id"),
    "no_categories": (lambda d: d.pop("categories"), "categories", "a list"),
    "string_width": (lambda d: d["images"][0].update(width="100"), "images[0].width", "a positive integer"),
}


@pytest.mark.parametrize("name", sorted(COCO_CASES))
def test_broken_coco(tmp_path, name):
    change, where, needle = COCO_CASES[name]
    ann = write_coco_dataset(tmp_path)
    doc = coco_doc()
    change(doc)
    ann.write_text(json.dumps(doc))
    line = _one_error_line(["data", "info", str(tmp_path), "--splits", "val"])
    assert line.startswith(f"error: {ann}: {where}: "), line
    assert needle in line, line


def test_box_within_tolerance_is_clipped(tmp_path):
    doc = coco_doc()
    doc["annotations"][0]["bbox"] = [-0.6, 20, 100.9, 40]  # x2 = 100.3 on a 100 px wide image
    ann = write_coco_dataset(tmp_path, doc)
    record = load_split(ann, "val").records[0]
    assert record.boxes[0].tolist() == [0.0, 20.0, 100.0, 60.0]


def test_missing_image_file(tmp_path):
    ann = write_coco_dataset(tmp_path)
    (tmp_path / "images" / "val" / "sub" / "b.png").unlink()
    line = _one_error_line(["data", "info", str(ann), "--splits", "val"])
    assert line.startswith(f"error: {ann}: images[1].file_name: ") and "'sub/b.png' missing" in line


def test_malformed_json_names_the_line(tmp_path):
    ann = write_coco_dataset(tmp_path)
    ann.write_text('{\n  "images": [\n    {"id": 1,,}\n  ]\n}\n')
    line = _one_error_line(["data", "info", str(ann), "--splits", "val"])
    assert line.startswith(f"error: {ann}: line 3: expected valid JSON"), line


def _yolo_with_label(tmp_path: Path, text: str) -> tuple[Path, Path]:
    data = write_yolo_dataset(tmp_path)
    label = tmp_path / "labels" / "train" / "0007.txt"
    label.write_text(text)
    return data, label


YOLO_ROW_CASES = {
    "too_few_numbers": ("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n", "line 2", "4 numbers"),
    "not_numbers": ("0 0.5 0.5 0.2 0.2\n\n0 a b c d\n", "line 3", "'0 a b c d'"),
    "unknown_class": ("3 0.5 0.5 0.2 0.2\n", "line 1", "a class id in 0..2"),
    "fractional_class": ("1.5 0.5 0.5 0.2 0.2\n", "line 1", "a class id in 0..2"),
    "negative_class": ("-1 0.5 0.5 0.2 0.2\n", "line 1", "a class id in 0..2"),
    "outside": ("0 0.5 0.5 0.2 0.2\n0 0.95 0.5 0.3 0.2\n", "line 2", "inside the 80x60 image"),
    "zero_size": ("0 0.5 0.5 0.0 0.2\n", "line 1", "positive width and height"),
    "even_polygon": ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", "line 1", "8 numbers"),
}


@pytest.mark.parametrize("name", sorted(YOLO_ROW_CASES))
def test_broken_yolo_label_rows(tmp_path, name):
    text, where, needle = YOLO_ROW_CASES[name]
    data, label = _yolo_with_label(tmp_path, text)
    line = _one_error_line(["data", "info", str(data), "--splits", "train"])
    assert line.startswith(f"error: {label}: {where}: "), line
    assert needle in line, line


YAML_CASES = {
    "no_names": ("train: images/train\nval: val.txt\n", "names", "missing"),
    "names_gap": ("train: images/train\nnames: {0: a, 2: b}\n", "names", "keys 0..nc-1"),
    "nc_disagrees": ("train: images/train\nnc: 4\nnames: [a, b, c]\n", "nc", "4"),
    "missing_split": ("val: val.txt\nnames: [a, b, c]\n", "train", "missing"),
    "missing_folder": ("train: images/nope\nnames: [a, b, c]\n", "train", "'images/nope'"),
    "not_yaml": ("train: [images/train\nnames: }\n", "line", "valid YAML"),
    "empty_split": ("train: images/empty\nnames: [a, b, c]\n", "train", "at least one image"),
}


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_broken_data_yaml(tmp_path, name):
    text, where, needle = YAML_CASES[name]
    data = write_yolo_dataset(tmp_path)
    (tmp_path / "images" / "empty").mkdir()
    data.write_text(text)
    line = _one_error_line(["data", "info", str(data), "--splits", "train"])
    assert line.startswith(f"error: {data}: {where}"), line
    assert needle in line, line


def test_split_without_any_label_file(tmp_path):
    data = write_yolo_dataset(tmp_path)
    (tmp_path / "labels" / "val" / "x.txt").unlink()
    line = _one_error_line(["data", "info", str(data), "--splits", "val"])
    assert line.startswith(f"error: {data}: val: expected label files beside the images")
    assert str(tmp_path / "labels" / "val" / "x.txt") in line


def test_synth_yaml_without_the_split(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text("train: images/train\nnames: [a]\nannotations: {train: instances_train.json}\n")
    line = _one_error_line(["data", "info", str(data), "--splits", "val"])
    assert line.startswith(f"error: {data}: annotations.val: expected the path of a COCO json, found missing")


def test_missing_image_in_txt_list(tmp_path):
    data = write_yolo_dataset(tmp_path)
    (tmp_path / "val.txt").write_text("images/val/x.jpg\nimages/val/gone.jpg\n")
    line = _one_error_line(["data", "info", str(data), "--splits", "val"])
    assert line.startswith(f"error: {tmp_path / 'val.txt'}: line 2: ") and "gone.jpg" in line


def test_unreadable_image_in_yolo_split(tmp_path):
    data = write_yolo_dataset(tmp_path)
    (tmp_path / "images" / "train" / "0009.png").write_bytes(b"not an image at all")
    line = _one_error_line(["data", "info", str(data), "--splits", "train"])
    image = tmp_path / "images" / "train" / "0009.png"
    assert line.startswith(f"error: {image}: <file>: expected a readable")


def test_no_such_dataset_and_empty_directory(tmp_path):
    line = _one_error_line(["data", "info", str(tmp_path / "nope")])
    assert "no such path" in line and "a dataset directory, a data.yaml or a COCO json" in line
    line = _one_error_line(["data", "info", str(tmp_path)])
    assert line.startswith(f"error: {tmp_path}: <file>: ")
    assert "data.yaml or annotations/instances_train" in line


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_while_loading_is_an_input_error(tmp_path, workers):
    ann = write_coco_dataset(tmp_path)
    split = load_split(ann, "val")
    (tmp_path / "images" / "val" / "sub" / "b.png").write_bytes(b"\x89PNG truncated")
    loader = make_loader(split, 64, batch=3, augment=False, mosaic=False, workers=workers)
    with pytest.raises(InputError) as info:
        list(loader)
    assert info.value.file.endswith("b.png") and "readable image" in info.value.expected


def test_synth_arguments(tmp_path):
    line = _one_error_line(["data", "synth", "--out", str(tmp_path / "d"), "--images", "1"])
    assert line.startswith("error: --images: images: expected at least 2")
    line = _one_error_line(["data", "synth", "--out", str(tmp_path / "d"), "--imgsz", "16"])
    assert "64..4096" in line
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("precious")
    line = _one_error_line(["data", "synth", "--out", str(tmp_path / "busy"), "--images", "4"])
    assert line.startswith(f"error: {tmp_path / 'busy'}: <file>: expected a new or empty directory")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "precious"
