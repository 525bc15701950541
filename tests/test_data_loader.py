"""The Dataset / collate / make_loader: batch layout, metadata round trip, determinism, mosaic switch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasearch.data import AugmentConfig, generate_synthetic, load_split, make_loader
from nasearch.data.loader import DetectionDataset
from nasearch.errors import InputError


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loader") / "ds"
    generate_synthetic(out, images=20, imgsz=96, seed=1)
    return out


def _rect_dataset(
    root: Path,
    sizes: list[tuple[int, int]],
    colors: list[tuple[int, int, int]] | None = None,
) -> Path:
    """Images of the given (w, h) with one white rectangle each (or a plain colour), as COCO."""
    images, annotations = [], []
    (root / "images").mkdir(parents=True)
    for i, (w, h) in enumerate(sizes):
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        if colors is None:
            x1, y1, x2, y2 = w // 5, h // 4, w // 5 + w // 2, h // 4 + h // 3
            arr[y1:y2, x1:x2] = 255
        else:
            x1, y1, x2, y2 = 0, 0, w, h
            arr[:] = colors[i]
        Image.fromarray(arr).save(root / "images" / f"{i}.png")
        images.append({"id": 100 + i, "file_name": f"{i}.png", "width": w, "height": h})
        annotations.append({"id": i + 1, "image_id": 100 + i, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    ann = root / "instances_val.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]})
    )
    return ann


def _batches(loader, epochs: int = 1) -> list:
    return [b for _ in range(epochs) for b in loader]


def test_batch_layout_and_metadata_round_trip(tmp_path):
    ann = _rect_dataset(tmp_path, [(200, 120), (90, 160), (64, 64)])
    split = load_split(ann, "val")
    loader = make_loader(split, 96, batch=2, augment=False, mosaic=False)
    batches = _batches(loader)
    assert len(loader) == len(batches) == 2
    first = batches[0]
    assert first.images.shape == (2, 3, 96, 96) and first.images.dtype == torch.float32
    assert first.images.min() >= 0.0 and first.images.max() <= 1.0
    assert first.targets.shape == (2, 6) and first.targets[:, 0].tolist() == [0.0, 1.0]
    for batch in batches:
        for b, meta in enumerate(batch.metas):
            record = split.records[meta.index]
            assert meta.image_id == record.image_id and not meta.augmented
            rows = batch.targets[batch.targets[:, 0] == b]
            # the white rectangle sits where the target says ...
            img = batch.images[b].permute(1, 2, 0).numpy()
            mask = img.min(axis=2) > 0.7
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = rows[0, 2:].tolist()
            assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
            assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
            # ... and maps back to the original annotation.
            np.testing.assert_allclose(meta.to_original(rows[:, 2:]), record.boxes, atol=1e-3)
            assert (meta.orig_width, meta.orig_height) == (record.width, record.height)


def test_same_seed_same_batches_any_worker_count(synth):
    split = load_split(synth, "train")

    def run(workers: int, seed: int) -> list:
        loader = make_loader(split, 96, batch=4, augment=True, mosaic=True, workers=workers, seed=seed)
        return _batches(loader, epochs=2)

    a, b, two_workers, other = run(0, 7), run(0, 7), run(2, 7), run(0, 8)
    for x, y, z in zip(a, b, two_workers, strict=True):
        assert torch.equal(x.images, y.images) and torch.equal(x.targets, y.targets)
        assert torch.equal(x.images, z.images) and torch.equal(x.targets, z.targets)
    assert not all(torch.equal(x.images, y.images) for x, y in zip(a, other, strict=True))
    per_epoch = len(a) // 2
    assert not torch.equal(a[0].images, a[per_epoch].images)  # epochs differ
    indices = [m.index for batch in a[:per_epoch] for m in batch.metas]
    assert sorted(indices) == list(range(len(split)))  # each image once per epoch
    assert indices != list(range(len(split)))  # shuffled


def test_mosaic_switch_reaches_persistent_workers(tmp_path):
    colors = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250), (250, 0, 250)]
    split = load_split(_rect_dataset(tmp_path, [(64, 64)] * 6, colors), "val")
    hyp = AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0, scale=0.0, translate=0.0, fliplr=0.0)
    loader = make_loader(split, 64, batch=6, augment=True, mosaic=True, workers=1, seed=0, hyp=hyp)

    def colours_per_image() -> list[int]:
        images = (next(iter(loader)).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [sum(bool((np.abs(img.astype(int) - c).max(axis=2) < 8).sum() > 20) for c in colors) for img in images]

    assert max(colours_per_image()) >= 2  # mosaics mix several source images
    loader.mosaic = False
    assert colours_per_image() == [1] * 6
    assert loader.epoch == 2
    loader.set_epoch(10)
    assert loader.epoch == 10


def test_cache_gives_the_same_samples(synth):
    split = load_split(synth, "val")
    plain = DetectionDataset(split, 64, augment=True, mosaic=True, seed=3)
    cached = DetectionDataset(split, 64, augment=True, mosaic=True, seed=3, cache=True)
    for i in range(len(split)):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert a[0].dtype == torch.uint8 and a[0].shape == (3, 64, 64)


def test_augmented_targets_stay_inside_and_sized(synth):
    split = load_split(synth, "train")
    loader = make_loader(split, 96, batch=8, augment=True, mosaic=True, seed=0)
    total = 0
    for batch in loader:
        t = batch.targets
        assert ((t[:, 2:] >= 0) & (t[:, 2:] <= 96)).all()
        assert ((t[:, 4] - t[:, 2]) > 2).all() and ((t[:, 5] - t[:, 3]) > 2).all()
        assert set(t[:, 1].long().tolist()) <= set(range(split.nc))
        total += len(t)
    assert total > len(split)  # mosaics bring several objects per image


def test_loader_arguments_are_checked(synth):
    split = load_split(synth, "val")
    with pytest.raises(InputError, match="multiple of 32"):
        make_loader(split, 100, batch=2, augment=False, mosaic=False)
    with pytest.raises(InputError, match="positive batch"):
        make_loader(split, 96, batch=0, augment=False, mosaic=False)
