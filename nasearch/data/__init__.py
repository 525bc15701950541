"""Detection datasets: COCO json and Ultralytics readers, the synthetic dataset, augmentation, loading."""

from nasearch.data.augment import AugmentConfig, LetterboxMeta, letterbox, letterbox_boxes, unletterbox_boxes
from nasearch.data.coco import coco_dict, load_coco, write_coco
from nasearch.data.loader import Batch, DetectionDataset, DetectionLoader, ImageMeta, collate, make_loader
from nasearch.data.records import DetectionSplit, ImageRecord
from nasearch.data.resolve import load_split
from nasearch.data.synth import ensure_synthetic, generate_synthetic
from nasearch.data.yolo import load_yolo

__all__ = [
    "AugmentConfig",
    "Batch",
    "DetectionDataset",
    "DetectionLoader",
    "DetectionSplit",
    "ImageMeta",
    "ImageRecord",
    "LetterboxMeta",
    "coco_dict",
    "collate",
    "ensure_synthetic",
    "generate_synthetic",
    "letterbox",
    "letterbox_boxes",
    "load_coco",
    "load_split",
    "load_yolo",
    "make_loader",
    "unletterbox_boxes",
    "write_coco",
]
