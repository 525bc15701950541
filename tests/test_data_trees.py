"""The trees data set: tiling and clipping rules on a synthetic wheel, errors, and the real DeepForest wheel."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import load_split
from nasearch.data.trees import (
    DATA_DIR,
    SCENES,
    VAL_SCENE,
    WHEEL_SHA256,
    SceneFiles,
    clip_boxes,
    generate_trees,
    tile_starts,
)
from nasearch.errors import InputError
from nasearch.yamlio import load_mapping

runner = CliRunner()

# scene -> (width, height, boxes); the validation scene has the same name as the real one.
FAKE = {
    "train_a": (
        256,
        256,
        [
            (10, 10, 40, 40),  # inside tile (0, 0)
            (100, 20, 150, 40),  # 28 of 50 px left of x=128: kept, clipped to 100..128
            (118, 118, 138, 138),
        ],
    ),  # a quarter in each of four tiles: dropped
    VAL_SCENE: (200, 128, [(5, 5, 25, 25), (150, 100, 190, 125)]),
}


def _voc(width: int, height: int, boxes: list[tuple[int, int, int, int]], name: str = "Tree") -> bytes:
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>"
        for a, b, c, d in boxes
    )
    return (
        f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"{objects}</annotation>"
    ).encode()


def _png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _fake_wheel(path: Path, xml_override: dict[str, bytes] | None = None) -> tuple[str, dict]:
    scenes = {}
    with zipfile.ZipFile(path, "w") as z:
        for i, (scene, (w, h, boxes)) in enumerate(FAKE.items()):
            png, xml = _png(w, h, i), _voc(w, h, boxes)
            z.writestr(f"{DATA_DIR}/{scene}.png", png)
            z.writestr(f"{DATA_DIR}/{scene}.xml", (xml_override or {}).get(scene, xml))
            scenes[scene] = (hashlib.sha256(png).hexdigest(), hashlib.sha256(xml).hexdigest(), len(boxes))
    return hashlib.sha256(path.read_bytes()).hexdigest(), scenes


@pytest.fixture
def fake(tmp_path) -> tuple[Path, SceneFiles]:
    wheel = tmp_path / "fake.whl"
    digest, scenes = _fake_wheel(wheel)
    return wheel, SceneFiles(wheel, expected_sha256=digest, scenes=scenes)


def test_tile_starts_cover_the_scene_flush_with_the_border():
    assert tile_starts(256, 128, 0) == [0, 128]
    assert tile_starts(300, 128, 0) == [0, 128, 172]
    assert tile_starts(300, 128, 32) == [0, 96, 172]
    assert tile_starts(100, 128, 0) == [0]


def test_clip_keeps_a_box_only_where_most_of_it_lies():
    boxes = np.array([[100.0, 20, 150, 40], [118, 118, 138, 138]])
    left, idx = clip_boxes(boxes, 0, 0, 128)
    np.testing.assert_allclose(left, [[100, 20, 128, 40]])
    assert idx.tolist() == [0]
    right, idx = clip_boxes(boxes, 128, 0, 128)
    assert len(right) == 0 and len(idx) == 0  # 22 of 50 px: less than half


def test_fake_wheel_split_by_scene_and_counts(fake, tmp_path):
    _, files = fake
    s = generate_trees(tmp_path / "out", tile=128, files=files)
    assert (s.train_tiles, s.val_tiles) == (4, 2)  # 2x2 tiles; 2 columns (0, 72) x 1 row of a 200x128 scene
    assert (s.boxes_total, s.boxes_kept, s.boxes_dropped) == (5, 4, 1)
    assert s.train_scenes == ["train_a"] and s.val_scenes == [VAL_SCENE]
    val = load_split(tmp_path / "out", "val")
    train = load_split(tmp_path / "out", "train")
    assert val.class_names == train.class_names == ("tree",) and len(val) == 2 and len(train) == 4
    assert all(r.path.name.startswith(VAL_SCENE) for r in val.records)
    assert all(r.path.name.startswith("train_a") for r in train.records)
    first = next(r for r in train.records if r.path.name == "train_a_y00000_x00000.png")
    np.testing.assert_allclose(first.boxes, [[10, 10, 40, 40], [100, 20, 128, 40]], atol=1e-3)
    meta = load_mapping(tmp_path / "out" / "data.yaml")
    assert meta["source"]["wheel_sha256"] == files.wheel_sha256 and meta["source"]["licence"] == "MIT"
    assert meta["split"] == {"val": [VAL_SCENE], "train": ["train_a"]}


def test_cli_reports_and_errors(fake, tmp_path):
    wheel, _ = fake
    result = runner.invoke(app, ["data", "trees", "--out", str(tmp_path / "x"), "--wheel", str(wheel)])
    assert result.exit_code == 2 and "sha256 " + WHEEL_SHA256 in result.output  # not the pinned wheel
    missing = runner.invoke(app, ["data", "trees", "--out", str(tmp_path / "x"), "--wheel", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "no such file" in missing.output and "Traceback" not in missing.output
    bad = runner.invoke(app, ["data", "trees", "--out", str(tmp_path / "x"), "--overlap", "128"])
    assert bad.exit_code == 2 and "overlap" in bad.output
    assert not (tmp_path / "x").exists()


def test_modified_file_and_bad_xml_are_input_errors(tmp_path):
    wheel = tmp_path / "w.whl"
    digest, scenes = _fake_wheel(wheel, xml_override={"train_a": b"<annotation><size>"})
    files = SceneFiles(wheel, expected_sha256=digest, scenes=scenes)
    with pytest.raises(InputError, match="a modified file"):
        files.read("train_a", "xml")
    scenes["train_a"] = (scenes["train_a"][0], hashlib.sha256(b"<annotation><size>").hexdigest(), 3)
    with pytest.raises(InputError, match="Pascal VOC XML"):
        generate_trees(tmp_path / "o", files=SceneFiles(wheel, expected_sha256=digest, scenes=scenes))
    assert not (tmp_path / "o").exists()
    (tmp_path / "z.whl").write_bytes(b"not a zip")
    z = tmp_path / "z.whl"
    with pytest.raises(InputError, match="not a zip"):
        SceneFiles(z, expected_sha256=hashlib.sha256(z.read_bytes()).hexdigest())


def _installed() -> bool:
    try:
        return importlib.metadata.version("deepforest") == "2.1.0"
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _installed(), reason="deepforest 2.1.0 is not installed (make installs it)")
def test_real_wheel(tmp_path):
    result = runner.invoke(app, ["data", "trees", "--out", str(tmp_path / "trees"), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["boxes_total"] == 951 == sum(n for _, _, n in SCENES.values())
    assert 0.9 * 951 <= s["boxes_kept"] <= 951 and s["boxes_kept"] + s["boxes_dropped"] == 951
    assert s["val_scenes"] == [VAL_SCENE] and len(s["train_scenes"]) == 3
    val = load_split(tmp_path / "trees", "val")
    # every validation tile is a native-resolution 128 px crop of the 1249 x 1035 scene: 10 x 9 tiles
    assert len(val) == s["val_tiles"] == 90 and {(r.width, r.height) for r in val.records} == {(128, 128)}
    assert 279 * 0.9 <= val.num_boxes() <= s["box_instances"]
