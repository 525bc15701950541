"""Post-processing, COCO mAP against pycocotools, evaluate_model (torch and ONNX), `nasearch evaluate`, and a
short training run that must learn the synthetic set."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import generate_synthetic, load_split, make_loader
from nasearch.data.augment import LetterboxMeta
from nasearch.eval import (
    Detections,
    NMSConfig,
    coco_map,
    coco_results,
    evaluate_model,
    ground_truth,
    non_max_suppression,
    predict_split,
)
from nasearch.onnxio.export import export_detector
from nasearch.space import Architecture, build_model
from nasearch.train.checkpoint import save_checkpoint
from nasearch.train.short import train_steps
from tests.fixtures import micro_neck_head

runner = CliRunner()

# A small YOLOv8-style detector (~90k parameters) for the learning test.
SMALL_ARCH = {
    "name": "small_v8",
    "nc": 10,
    "imgsz": 96,
    "reg_max": 8,
    "act": "silu",
    "backbone": {
        "stem": {"type": "conv_stem", "out": 8},
        "stages": [{"type": "c2f_stage", "out": c, "blocks": 1} for c in (16, 16, 32, 32)],
        "context": {"type": "sppf", "out": 32},
    },
    **micro_neck_head(),
}
TRAIN_STEPS = 250
IMGSZ = 96


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


# ---------------------------------------------------------------------------------------------- NMS


def _nms(boxes: list[list[float]], scores: list[list[float]], **cfg: object) -> Detections:
    return non_max_suppression(torch.tensor([boxes]), torch.tensor([scores]), NMSConfig(**cfg))[0]


def test_nms_suppresses_overlaps_within_a_class_only():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [30, 30, 40, 40]]
    scores = [[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.6, 0.0]]
    det = _nms(boxes, scores, iou=0.5)
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])  # best first
    assert det.classes.tolist() == [0, 1, 0]
    assert det.boxes[0].tolist() == [0, 0, 10, 10]
    loose = _nms(boxes, scores, iou=0.9)  # IoU of the first two is 0.68: both survive a 0.9 threshold
    assert len(loose) == 4


def test_confidence_threshold_multi_label_and_limits():
    boxes = [[0, 0, 10, 10], [50, 50, 60, 60]]
    scores = [[0.6, 0.5], [0.0005, 0.002]]
    assert len(_nms(boxes, scores)) == 3  # both classes of box 0, class 1 of box 1
    single = _nms(boxes, scores, multi_label=False)
    assert single.classes.tolist() == [0, 1] and single.scores.tolist() == pytest.approx([0.6, 0.002])
    assert len(_nms(boxes, scores, conf=0.01)) == 2

    n = 500
    grid = torch.arange(n, dtype=torch.float32)
    many = torch.stack((grid * 20, grid * 0, grid * 20 + 10, grid * 0 + 10), -1)  # disjoint boxes
    s = torch.linspace(0.01, 0.99, n)[:, None]
    det = non_max_suppression(many[None], s[None], NMSConfig())[0]
    assert len(det) == 300 and torch.equal(det.scores, s[-300:, 0].flip(0))
    capped = non_max_suppression(many[None], s[None], NMSConfig(pre_nms_topk=50, max_det=100))[0]
    assert len(capped) == 50 and float(capped.scores.min()) == pytest.approx(float(s[-50, 0]))
    with pytest.raises(ValueError, match="boxes"):
        non_max_suppression(many, s)


def test_rescale_undoes_the_letterbox():
    meta = LetterboxMeta(scale_x=0.5, scale_y=0.5, pad_x=0, pad_y=16)  # a 128x64 image letterboxed to 64
    det = Detections(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), torch.tensor([0.9]), torch.tensor([1]))
    back = det.rescaled(meta, 128, 64)
    assert back.boxes.tolist() == [[20.0, 8.0, 60.0, 48.0]]
    assert back.scores.tolist() == pytest.approx([0.9])


# ---------------------------------------------------------------------------------------- COCO mAP


def _random_coco(seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    cats = [1, 5, 9]
    images, anns, dets = [], [], []
    for image_id in range(1, 16):
        w, h = int(rng.integers(80, 200)), int(rng.integers(80, 200))
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 6))):
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            cat = int(rng.choice(cats))
            crowd = int(rng.random() < 0.05)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": crowd,
                }
            )
            if rng.random() < 0.8:  # a detection near the truth
                jitter = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": cat if rng.random() < 0.9 else 5,
                        "bbox": [x + jitter[0], y + jitter[1], bw + jitter[2], bh + jitter[3]],
                        "score": float(rng.uniform(0.2, 1.0)),
                    }
                )
        for _ in range(int(rng.integers(0, 4))):  # false positives
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.choice(cats)),
                    "bbox": [rng.uniform(0, w / 2), rng.uniform(0, h / 2), rng.uniform(3, 40), rng.uniform(3, 40)],
                    "score": float(rng.uniform(0.0, 0.6)),
                }
            )
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in cats]}
    return gt, dets


def _pycocotools_map(gt: dict, dets: list[dict]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0] * 100, ev.stats[1] * 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_agrees_with_pycocotools(seed):
    gt, dets = _random_coco(seed)
    ours = coco_map(gt, dets)
    ref_map, ref_map50 = _pycocotools_map(gt, dets)
    assert 5 < ours.map50 < 100  # a non-trivial case
    assert abs(ours.map - ref_map) < 1e-3
    assert abs(ours.map50 - ref_map50) < 1e-3


def test_coco_map_bounds():
    gt, _ = _random_coco(3)
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in gt["annotations"]
        if not a["iscrowd"]
    ]
    assert coco_map(gt, perfect).map == pytest.approx(100.0)
    assert coco_map(gt, []).map == 0.0
    assert coco_map({**gt, "annotations": []}, perfect[:1]).map50 == 0.0


def _write_nonsquare_dataset(root: Path) -> Path:
    """Three non-square images with known boxes, as a COCO json (through the data package's writer)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for image_id, (w, h) in enumerate([(120, 80), (64, 100), (90, 90)], start=1):
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for k in range(3):
            bw, bh = 10 + 5 * k, 12 + 3 * k
            x, y = 5 + 17 * k, 3 + 21 * k
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 3 + 4 * (k % 2),
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    doc = {"images": images, "annotations": anns, "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]}
    path = root / "instances_val.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("imgsz", [64, 160])
def test_letterboxed_truth_scores_100_after_mapping_back(tmp_path, imgsz):
    """Feed the letterboxed ground truth back as predictions: only exact coordinate mapping scores 100."""
    split = load_split(_write_nonsquare_dataset(tmp_path))
    truth = iter(make_loader(split, imgsz, 2, augment=False, mosaic=False, shuffle=False))

    def oracle(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, targets, _ = next(truth)
        b, k = len(images), 8
        boxes, scores = torch.zeros(b, k, 4), torch.zeros(b, k, split.nc)
        for i in range(b):
            rows = targets[targets[:, 0] == i]
            boxes[i, : len(rows)] = rows[:, 2:]
            scores[i, torch.arange(len(rows)), rows[:, 1].long()] = 1.0
        return boxes, scores

    dets, ids = predict_split(oracle, split, imgsz, 2, NMSConfig())
    assert sorted(ids) == [1, 2, 3]
    scores = coco_map(ground_truth(split), coco_results(dets, ids, split.category_ids))
    assert scores.map == pytest.approx(100.0)
    from_file = coco_map(ground_truth(split, from_file=True), coco_results(dets, ids, split.category_ids))
    assert from_file.map == pytest.approx(100.0)


# -------------------------------------------------------------------- training, torch/ONNX, CLI


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "synth"
    generate_synthetic(root, images=40, imgsz=IMGSZ, seed=0)
    return root


@pytest.fixture(scope="module")
def trained(synth):
    """The small detector before and after a short training run on the synthetic train split."""
    torch.set_num_threads(1)
    split = load_split(synth, "train")
    arch = Architecture.from_dict(SMALL_ARCH)
    torch.manual_seed(0)
    model = build_model(arch, nc=split.nc)
    before = evaluate_model(model, split, IMGSZ, batch=16)
    loader = make_loader(split, IMGSZ, 8, augment=False, mosaic=False, shuffle=True, seed=0, cache=True)
    start = time.perf_counter()
    history = train_steps(model, loader, steps=TRAIN_STEPS, lr=5e-3, seed=0)
    seconds = time.perf_counter() - start
    after = evaluate_model(model, split, IMGSZ, batch=16)
    return {
        "model": model.eval(),
        "arch": arch,
        "split": split,
        "before": before,
        "after": after,
        "history": history,
        "seconds": seconds,
    }


def test_short_training_learns_the_synthetic_set(trained):
    """250 steps of a ~90k-parameter detector on 34 images (10 classes, 96 px) fit the training images.

    Measured: mAP50 ~81, mAP50-95 ~67 (an untrained model scores 0). The bound is far below that and far
    above chance: it fails if assignment, loss, decoding, NMS or the coordinate mapping is broken.
    """
    before, after, history = trained["before"], trained["after"], trained["history"]
    print(
        f"\nlearning test: {TRAIN_STEPS} steps in {trained['seconds']:.1f} s, mAP {after.map:.1f}, "
        f"mAP50 {after.map50:.1f} (untrained {before.map:.2f}), loss {history.losses[0]:.1f} -> "
        f"{history.mean_loss():.1f}"
    )
    assert before.map50 < 1.0
    assert after.map50 > 40.0 and after.map > 20.0
    assert history.mean_loss() < 0.5 * history.losses[0]
    assert after.images == len(trained["split"])


def test_onnx_file_scores_like_the_torch_model(trained, tmp_path):
    split = trained["split"].head(7)
    onnx_path = export_detector(trained["model"], tmp_path / "m.onnx", IMGSZ, batch=2)  # static batch 2
    torch_result = evaluate_model(trained["model"], split, IMGSZ, batch=4)
    onnx_result = evaluate_model(onnx_path, split, batch=4)  # imgsz from the ONNX input; 7 = 2+2+2+1 padded
    assert onnx_result.imgsz == IMGSZ and onnx_result.images == 7
    assert torch_result.map50 > 20
    assert abs(onnx_result.map - torch_result.map) < 0.05
    assert abs(onnx_result.map50 - torch_result.map50) < 0.05


def _invoke(args: list[str]):
    return runner.invoke(app, args)


def test_cli_evaluate_checkpoint_and_onnx(trained, synth, tmp_path):
    model = trained["model"]
    ckpt = tmp_path / "best.pt"
    save_checkpoint({"arch": trained["arch"].data, "model": model.state_dict(), "train_args": {"imgsz": IMGSZ}}, ckpt)
    result = _invoke(["evaluate", str(ckpt), "--data", str(synth), "--split", "train", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"map", "map50", "images"} <= set(doc)
    assert doc["images"] == len(trained["split"]) and doc["imgsz"] == IMGSZ
    assert doc["map"] == pytest.approx(trained["after"].map, abs=1e-3)
    assert doc["map50"] == pytest.approx(trained["after"].map50, abs=1e-3)

    onnx_path = export_detector(model, tmp_path / "m.onnx", IMGSZ, batch=1)
    result = _invoke(["evaluate", str(onnx_path), "--data", str(synth), "--json"])  # the val split
    assert result.exit_code == 0, result.output
    val = json.loads(result.stdout)
    assert val["images"] == len(load_split(synth, "val")) and 0.0 <= val["map"] <= 100.0

    plain = _invoke(["evaluate", str(ckpt), "--data", str(synth), "--split", "train"])
    assert plain.exit_code == 0 and "mAP50-95" in plain.stdout


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_cli_evaluate_bad_models_exit_2(trained, synth, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    assert "garbage.pt" in _error_line(_invoke(["evaluate", str(garbage), "--data", str(synth)]))

    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_text("not onnx")
    assert "bad.onnx" in _error_line(_invoke(["evaluate", str(bad_onnx), "--data", str(synth)]))

    no_arch = tmp_path / "no_arch.pt"
    save_checkpoint({"model": trained["model"].state_dict()}, no_arch)
    assert "arch" in _error_line(_invoke(["evaluate", str(no_arch), "--data", str(synth)]))

    other_nc = tmp_path / "nc3.pt"
    arch3 = Architecture.from_dict({**SMALL_ARCH, "nc": 3})
    save_checkpoint({"arch": arch3.data, "model": build_model(arch3).state_dict()}, other_nc)
    assert "classes" in _error_line(_invoke(["evaluate", str(other_nc), "--data", str(synth)]))

    onnx_path = export_detector(trained["model"], tmp_path / "m.onnx", IMGSZ, batch=1)
    line = _error_line(_invoke(["evaluate", str(onnx_path), "--data", str(synth), "--imgsz", "128"]))
    assert "imgsz" in line
    missing = _invoke(["evaluate", str(tmp_path / "nope.pt"), "--data", str(synth)])
    assert "no such path" in _error_line(missing)
    assert "iou" in _error_line(_invoke(["evaluate", str(onnx_path), "--data", str(synth), "--iou", "0"]))
