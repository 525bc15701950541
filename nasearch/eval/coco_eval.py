"""COCO box mAP (percent points) with faster-coco-eval, for a dataset split and per-image detections.

Ground truth is built from the split's in-memory records (any reader: COCO json or YOLO txt), crowd regions
included as ignore regions, or taken from the split's own COCO json. COCO scores at most 100 detections per
image, as pycocotools does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faster_coco_eval import COCO, COCOeval_faster

from nasearch.data.coco import coco_dict, read_json
from nasearch.data.records import DetectionSplit
from nasearch.eval.postprocess import Detections


@dataclass(frozen=True)
class CocoScores:
    map: float  # AP averaged over IoU 0.50:0.95, percent points
    map50: float  # AP at IoU 0.50, percent points


def _quiet(*_: object, **__: object) -> None:
    return None


def ground_truth(split: DetectionSplit, from_file: bool = False) -> dict[str, Any]:
    """COCO ground truth of the split; `from_file` reads the split's COCO json (restricted to its images)."""
    if not from_file or split.ann_file is None:
        return coco_dict(split)
    doc = read_json(split.ann_file)
    ids = {r.image_id for r in split.records}
    return {
        **doc,
        "images": [i for i in doc["images"] if i["id"] in ids],
        "annotations": [a for a in doc.get("annotations", []) if a["image_id"] in ids],
    }


def coco_results(
    dets: Sequence[Detections], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Detections (original-image xyxy pixels) as COCO result entries with xywh boxes."""
    out: list[dict[str, Any]] = []
    for det, image_id in zip(dets, image_ids, strict=True):
        rows = zip(det.boxes.tolist(), det.scores.tolist(), det.classes.tolist(), strict=True)
        for (x1, y1, x2, y2), score, cls in rows:
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_ids[cls]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return out


def coco_map(gt: dict[str, Any], results: Iterable[dict[str, Any]]) -> CocoScores:
    """mAP50-95 and mAP50 in percent points; 0 when there are no detections or no ground-truth boxes."""
    results = [copy.copy(r) for r in results]  # loadRes adds fields to the entries
    if not results or not gt.get("annotations"):
        return CocoScores(0.0, 0.0)
    coco_gt = COCO(gt, print_function=_quiet)
    coco_dt = coco_gt.loadRes(results)
    evaluator = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_quiet)
    evaluator.params.imgIds = sorted(coco_gt.getImgIds())
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats
    return CocoScores(map=max(float(stats[0]), 0.0) * 100.0, map50=max(float(stats[1]), 0.0) * 100.0)
