"""Evaluation: post-processing (NMS), COCO mAP, and running a model or an ONNX file over a split."""

from nasearch.eval.coco_eval import CocoScores, coco_map, coco_results, ground_truth
from nasearch.eval.inference import EvalResult, evaluate_model, open_onnx, predict_split
from nasearch.eval.postprocess import Detections, NMSConfig, non_max_suppression, select_image

__all__ = [
    "CocoScores",
    "Detections",
    "EvalResult",
    "NMSConfig",
    "coco_map",
    "coco_results",
    "evaluate_model",
    "ground_truth",
    "non_max_suppression",
    "open_onnx",
    "predict_split",
    "select_image",
]
