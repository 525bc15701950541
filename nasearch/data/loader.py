"""A torch Dataset and DataLoader over a DetectionSplit: letterbox, mosaic, affine, HSV, flip.

Randomness: every sample draws from its own generator seeded by (seed, epoch, index), and the sampler (in
the main process) sends (index, epoch, mosaic) to the workers. So a batch depends only on the seed and the
epoch -- not on the number of workers -- and `loader.mosaic = False` reaches persistent workers at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from nasearch.data.augment import (
    AugmentConfig,
    Labels,
    LetterboxMeta,
    clip_and_filter,
    flip_horizontal,
    hsv_jitter,
    mosaic4,
    pad_to_square,
    random_affine,
    resize_longest,
    unletterbox_boxes,
)
from nasearch.data.records import DetectionSplit, ImageRecord
from nasearch.errors import OPTION, InputError
from nasearch.validation import check_imgsz

_EXIF_ORIENTATION = 0x0112
CACHE_LIMIT_BYTES = 2 * 1024**3
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageMeta:
    """Where a sample came from and how to map its boxes back (exact only when `augmented` is False)."""

    index: int
    image_id: int
    path: str
    orig_width: int
    orig_height: int
    letterbox: LetterboxMeta
    augmented: bool

    def to_original(self, boxes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Boxes in letterboxed pixels (e.g. predictions) to original-image pixels."""
        arr = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
        return unletterbox_boxes(arr, self.letterbox, self.orig_width, self.orig_height)


class Batch(NamedTuple):
    images: torch.Tensor  # [B, 3, S, S] float32 in 0..1
    targets: torch.Tensor  # [M, 6] (batch_index, cls, x1, y1, x2, y2) letterboxed pixels
    metas: list[ImageMeta]


@dataclass(frozen=True)
class ItemKey:
    """What the sampler sends to a worker."""

    index: int
    epoch: int
    mosaic: bool


@dataclass(frozen=True)
class LoadFailure:
    """An unreadable image, carried from a worker to the main process and raised there as an InputError."""

    file: str
    path: str
    expected: str
    found: str

    def error(self) -> InputError:
        return InputError(self.file, self.path, self.expected, self.found)


def decode_resized(record: ImageRecord, size: int) -> tuple[np.ndarray, float, float]:
    """Decode an image (EXIF-upright, RGB) with its longest side resized to `size`.

    Returns (HWC uint8, scale_x, scale_y) where scale maps the record's coordinates to the returned image.
    JPEGs are decoded at a reduced scale when that still leaves at least `size` pixels (fast for big images).
    """
    with Image.open(record.path) as im:
        if im.format == "JPEG":
            r = size / max(im.size)
            if r < 0.5:
                im.draft("RGB", (int(im.size[0] * r) + 1, int(im.size[1] * r) + 1))
        if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            im = ImageOps.exif_transpose(im)
        rgb = resize_longest(im.convert("RGB"), size)
        arr = np.asarray(rgb)
    return arr, arr.shape[1] / record.width, arr.shape[0] / record.height


def _record_labels(record: ImageRecord, sx: float, sy: float) -> Labels:
    return Labels(record.boxes, record.classes).scaled(sx, sy)


class DetectionDataset(Dataset):
    """Samples as (image uint8 [3, S, S], targets float32 [n, 5] (cls, x1, y1, x2, y2), ImageMeta)."""

    def __init__(
        self,
        split: DetectionSplit,
        imgsz: int,
        augment: bool = False,
        mosaic: bool = False,
        hyp: AugmentConfig | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        check_imgsz(imgsz)
        self.split = split
        self.imgsz = imgsz
        self.augment = augment
        self.mosaic = mosaic  # used when indexed with a plain int; the loader's sampler decides otherwise
        self.hyp = hyp or AugmentConfig()
        self.seed = seed
        self._cache: list[tuple[np.ndarray, float, float]] | None = None
        if cache:
            self.fill_cache()

    def __len__(self) -> int:
        return len(self.split.records)

    def fill_cache(self) -> None:
        """Decode every image once (resized), if the split fits in CACHE_LIMIT_BYTES."""
        estimate = len(self) * self.imgsz * self.imgsz * 3
        if estimate > CACHE_LIMIT_BYTES:
            return
        cache = []
        for i in range(len(self)):
            item = self._decode(i)
            if isinstance(item, LoadFailure):
                raise item.error()
            cache.append(item)
        self._cache = cache

    def _decode(self, i: int) -> tuple[np.ndarray, float, float] | LoadFailure:
        record = self.split.records[i]
        try:
            return decode_resized(record, self.imgsz)
        except DECODE_ERRORS as exc:
            return LoadFailure(
                str(record.path),
                f"image {record.image_id}",
                f"a readable image (listed in {self.split.source})",
                f"{type(exc).__name__}: {exc}",
            )

    def _load(self, i: int) -> tuple[np.ndarray, Labels, float, float] | LoadFailure:
        item = self._cache[i] if self._cache is not None else self._decode(i)
        if isinstance(item, LoadFailure):
            return item
        img, sx, sy = item
        return img, _record_labels(self.split.records[i], sx, sy), sx, sy

    def _sample(self, key: ItemKey) -> tuple[torch.Tensor, torch.Tensor, ImageMeta] | LoadFailure:
        rng = np.random.default_rng([self.seed, key.epoch, key.index])
        record = self.split.records[key.index]
        first = self._load(key.index)
        if isinstance(first, LoadFailure):
            return first
        img, labels, sx, sy = first
        size = self.imgsz
        meta = LetterboxMeta(sx, sy, (size - img.shape[1]) // 2, (size - img.shape[0]) // 2)
        if self.augment and key.mosaic and rng.random() < self.hyp.mosaic:
            tiles = [(img, labels)]
            for j in rng.integers(0, len(self), 3).tolist():
                other = self._load(j)
                if isinstance(other, LoadFailure):
                    return other
                tiles.append((other[0], other[1]))
            canvas, labels = mosaic4(tiles, size, rng)
            img, labels = random_affine(canvas, labels, size, self.hyp, rng)
        else:
            img, pad_x, pad_y = pad_to_square(img, size)
            labels = labels.scaled(1.0, 1.0, pad_x, pad_y)
            if self.augment:
                img, labels = random_affine(img, labels, size, self.hyp, rng)
            else:
                area = (labels.boxes[:, 2] - labels.boxes[:, 0]) * (labels.boxes[:, 3] - labels.boxes[:, 1])
                labels = clip_and_filter(labels, size, size, area, 0.0, 0.0)
        if self.augment:
            img = hsv_jitter(img, self.hyp, rng)
            if rng.random() < self.hyp.fliplr:
                img, labels = flip_horizontal(img, labels)
        targets = np.concatenate([labels.classes[:, None].astype(np.float32), labels.boxes], axis=1)
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        info = ImageMeta(
            index=key.index,
            image_id=record.image_id,
            path=str(record.path),
            orig_width=record.width,
            orig_height=record.height,
            letterbox=meta,
            augmented=self.augment,
        )
        return image, torch.from_numpy(targets.reshape(-1, 5)), info

    def __getitem__(self, key: int | ItemKey) -> Any:
        if isinstance(key, ItemKey):
            return self._sample(key)  # loader path: failures travel back as LoadFailure
        out = self._sample(ItemKey(int(key), 0, self.mosaic))
        if isinstance(out, LoadFailure):
            raise out.error()
        return out


def collate(samples: list[Any]) -> Batch | LoadFailure:
    """Stack samples: images to float 0..1, targets to [M, 6] with the batch index first."""
    for s in samples:
        if isinstance(s, LoadFailure):
            return s
    images = torch.stack([s[0] for s in samples]).float().div_(255.0)
    rows = [torch.cat([torch.full((len(s[1]), 1), float(b)), s[1]], dim=1) for b, s in enumerate(samples)]
    return Batch(images, torch.cat(rows) if rows else torch.zeros(0, 6), [s[2] for s in samples])


class EpochSampler(Sampler[ItemKey]):
    """Yields ItemKeys; the epoch counts up as each iteration starts; shuffling is seeded by (seed, epoch)."""

    def __init__(self, size: int, shuffle: bool, seed: int, mosaic: bool) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.mosaic = mosaic
        self.epoch = 0  # the epoch the next iteration will be

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[ItemKey]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        for i in order:
            yield ItemKey(i, epoch, self.mosaic)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class DetectionLoader(DataLoader):
    """A DataLoader of Batches; `mosaic` can be switched off between epochs (e.g. for the last ones)."""

    def __init__(
        self, dataset: DetectionDataset, batch: int, sampler: EpochSampler, workers: int, drop_last: bool
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            drop_last=drop_last,
            worker_init_fn=_worker_init if workers > 0 else None,
            prefetch_factor=2 if workers > 0 else None,
        )

    @property
    def mosaic(self) -> bool:
        return self.sampler.mosaic  # type: ignore[attr-defined]

    @mosaic.setter
    def mosaic(self, value: bool) -> None:
        self.sampler.mosaic = bool(value)  # type: ignore[attr-defined]

    def close_mosaic(self) -> None:
        self.mosaic = False

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will be."""
        return self.sampler.epoch  # type: ignore[attr-defined]

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration be `epoch` (for resuming)."""
        self.sampler.epoch = int(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        for batch in super().__iter__():
            if isinstance(batch, LoadFailure):
                raise batch.error()
            yield batch


def make_loader(
    split: DetectionSplit,
    imgsz: int,
    batch: int,
    augment: bool,
    mosaic: bool,
    workers: int = 0,
    seed: int = 0,
    shuffle: bool | None = None,
    cache: bool = False,
    hyp: AugmentConfig | None = None,
    drop_last: bool = False,
) -> DetectionLoader:
    """A loader of Batches over a split. `shuffle` defaults to `augment` (training); `cache` keeps the
    decoded, resized images in RAM (skipped above CACHE_LIMIT_BYTES)."""
    if batch < 1:
        raise InputError(OPTION, "batch", "a positive batch size", str(batch))
    if workers < 0:
        raise InputError(OPTION, "workers", "0 or more workers", str(workers))
    dataset = DetectionDataset(split, imgsz, augment=augment, mosaic=mosaic, hyp=hyp, seed=seed, cache=cache)
    sampler = EpochSampler(len(dataset), augment if shuffle is None else shuffle, seed, mosaic)
    return DetectionLoader(dataset, batch, sampler, workers, drop_last)
