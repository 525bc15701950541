"""The synthetic dataset: determinism, box statistics, visible-fraction rule, readers, concurrent ensure."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic, generate_synthetic, load_split, load_yolo
from nasearch.data.shapes import CLASS_NAMES, MIN_VISIBLE, ShapeSpec, render_scene
from nasearch.data.synth import MARKER, MAX_OBJECT_FRACTION, MIN_OBJECT_PX, synth_image
from nasearch.errors import InputError

runner = CliRunner()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth160(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_synthetic(out, images=120, imgsz=160, seed=3)
    return out


def test_layout_and_both_readers_agree(synth160):
    for split in ("train", "val"):
        assert (synth160 / "annotations" / f"instances_{split}.json").is_file()
        assert any((synth160 / "images" / split).glob("*.jpg"))
    coco = load_split(synth160, "val")
    same = load_split(synth160 / "data.yaml", "val")
    yolo = load_yolo(synth160 / "data.yaml", "val")  # the txt labels, as Ultralytics would read them
    assert coco.fmt == same.fmt == "coco" and yolo.fmt == "yolo"
    assert len(coco) == 18 and len(load_split(synth160, "train")) == 102  # 85 / 15
    assert coco.class_names == yolo.class_names == CLASS_NAMES
    for a, b in zip(coco.records, yolo.records, strict=True):
        assert a.path == b.path and a.image_id == b.image_id
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_array_equal(a.classes, b.classes)


def test_box_statistics(synth160):
    sides, classes = [], []
    for split in ("train", "val"):
        for r in load_split(synth160, split).records:
            assert r.width == r.height == 160
            assert (r.boxes >= 0).all() and (r.boxes <= 160).all()
            assert len(r.boxes) >= 1  # the last drawn object is never occluded
            sides.extend((r.boxes[:, 2:] - r.boxes[:, :2]).max(axis=1).tolist())
            classes.extend(r.classes.tolist())
    counts = np.bincount(classes, minlength=len(CLASS_NAMES))
    assert (counts > 0).sum() >= 8 and counts.min() >= 0.3 * counts.mean()
    sides = np.asarray(sides)
    assert sides.min() <= MIN_OBJECT_PX + 4
    assert (sides < 24).mean() > 0.2  # small objects (stride 8) are common
    assert sides.max() >= 0.45 * 160 and (sides > 48).sum() >= 10  # large objects (stride 32) exist
    assert sides.max() <= MAX_OBJECT_FRACTION * 160 + 2


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_synthetic(a, images=6, imgsz=96, seed=5)
    generate_synthetic(b, images=6, imgsz=96, seed=5)
    generate_synthetic(c, images=6, imgsz=96, seed=6)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    images = [k for k in fa if k.endswith(".jpg")]
    assert len(images) == 6 and all(fa[k] != fc[k] for k in images)
    assert fa["annotations/instances_train.json"] != fc["annotations/instances_train.json"]


def test_visible_fraction_rule_on_a_constructed_scene():
    background = np.full((160, 160, 3), 100, dtype=np.uint8)
    base = ShapeSpec(cls=CLASS_NAMES.index("square"), cx=60, cy=60, size=40, color=(250, 0, 0))
    # A later square covers x in [64, 80) of the first one's [40, 80): 60% stays visible -> kept, box shrinks.
    partly = ShapeSpec(cls=CLASS_NAMES.index("square"), cx=84, cy=60, size=40, color=(0, 250, 0))
    scene = render_scene(background, [base, partly])
    assert scene.kept.tolist() == [True, True]
    assert scene.visible[0] == pytest.approx(0.6, abs=0.03) and scene.visible[1] == 1.0
    np.testing.assert_allclose(scene.boxes, [[40, 40, 64, 80], [64, 40, 104, 80]], atol=1)
    # Covering 70% leaves 30% < MIN_VISIBLE -> the first box is dropped, pixels stay drawn.
    mostly = ShapeSpec(cls=CLASS_NAMES.index("square"), cx=72, cy=60, size=40, color=(0, 250, 0))
    scene = render_scene(background, [base, mostly])
    assert scene.visible[0] == pytest.approx(0.3, abs=0.03) and scene.kept.tolist() == [False, True]
    assert scene.classes.tolist() == [CLASS_NAMES.index("square")]
    assert (scene.image[:, 40:52, 0] == 250).any()  # the uncovered strip of the dropped square is visible


def test_visible_fraction_rule_in_generated_scenes():
    partial = 0
    for index in range(60):
        scene = synth_image(11, index, 128)
        assert (scene.kept == (scene.visible >= MIN_VISIBLE)).all()
        assert len(scene.boxes) == scene.kept.sum()
        partial += int(((scene.visible >= MIN_VISIBLE) & (scene.visible < 0.98)).sum())
    assert partial >= 5  # partial occlusion really happens and such objects stay labelled


def test_every_class_differs_by_outline_or_texture():
    """Same colour for all: masks of the classes at equal size must differ from each other."""
    background = np.zeros((64, 64, 3), dtype=np.uint8)
    drawings = []
    for cls in range(len(CLASS_NAMES)):
        spec = ShapeSpec(
            cls=cls, cx=32, cy=32, size=48, aspect=2.0, color=(200, 200, 200), color2=(40, 40, 40), period=8
        )
        drawings.append(render_scene(background, [spec]).image[..., 0].astype(int))
    for i in range(len(drawings)):
        for j in range(i):
            assert np.abs(drawings[i] - drawings[j]).mean() > 5, (CLASS_NAMES[i], CLASS_NAMES[j])


def test_cli_synth_json_and_summary_line(tmp_path):
    out = tmp_path / "cli"
    args = ["data", "synth", "--out", str(out), "--images", "8", "--imgsz", "96", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["images"] == 8 and doc["train_images"] + doc["val_images"] == 8 and doc["classes"] == 10
    assert (
        doc["boxes"]
        == sum(doc["boxes_per_class"])
        == load_split(out, "train").num_boxes() + load_split(out, "val").num_boxes()
    )
    summary = [ln for ln in result.stderr.splitlines() if ln.startswith("synth:")]
    assert len(summary) == 1 and "8 images" in summary[0]
    again = runner.invoke(app, ["data", "synth", "--out", str(out), "--images", "6", "--imgsz", "96"])
    assert again.exit_code == 0 and len(load_split(out, "train")) + len(load_split(out, "val")) == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def _ensure(directory: str, queue) -> None:
    try:
        ensure_synthetic(directory, images=24, imgsz=64, seed=2)
        queue.put("ok")
    except Exception as exc:  # reported to the test
        queue.put(repr(exc))


def test_ensure_synthetic_is_safe_when_two_processes_race(tmp_path):
    target = tmp_path / "shared"
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ensure, args=(str(target), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(queue.get(timeout=5) for _ in procs) == ["ok", "ok"]
    assert (target / MARKER).is_file()
    assert len(load_split(target, "train")) + len(load_split(target, "val")) == 24
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]
    reference = tmp_path / "ref"
    generate_synthetic(reference, images=24, imgsz=64, seed=2)
    assert _files(reference) == _files(target)


def test_ensure_synthetic_reuses_and_refuses_other_settings(tmp_path):
    target = ensure_synthetic(tmp_path / "d", images=4, imgsz=64, seed=0)
    stamp = (target / MARKER).stat().st_mtime_ns
    assert ensure_synthetic(target, images=4, imgsz=64, seed=0) == target
    assert (target / MARKER).stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="other settings"):
        ensure_synthetic(target, images=4, imgsz=64, seed=1)
