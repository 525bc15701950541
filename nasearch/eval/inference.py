"""Run a detector over a dataset split and score it: a torch model on CPU, or an ONNX file via onnxruntime.

Both paths feed the same letterboxed 0..1 RGB batches from `nasearch.data.make_loader` (no augmentation)
and expect the same decoded outputs (`boxes [B, N, 4]` xyxy input pixels, `scores [B, N, nc]`), so a
model and its ONNX export are scored identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasearch.data.loader import make_loader
from nasearch.data.records import DetectionSplit
from nasearch.errors import OPTION, InputError
from nasearch.eval.coco_eval import coco_map, coco_results, ground_truth
from nasearch.eval.postprocess import Detections, NMSConfig, non_max_suppression
from nasearch.nn.detector import decode
from nasearch.onnxio.isa import exact_int8_session

Predictor = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ONNX_EXPECTED = "an ONNX detector with input [B, 3, S, S] and outputs boxes [B, N, 4], scores [B, N, nc]"


@dataclass(frozen=True)
class EvalResult:
    map: float  # mAP50-95, percent points
    map50: float  # mAP50, percent points
    images: int
    imgsz: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "map": round(self.map, 4),
            "map50": round(self.map50, 4),
            "images": self.images,
            "imgsz": self.imgsz,
            "seconds": round(self.seconds, 3),
        }


def torch_predictor(model: nn.Module) -> Predictor:
    """Eval-mode forward (on the model's device) returning decoded (boxes, scores), whatever `export_raw`
    says."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")

    @torch.inference_mode()
    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(images.to(device))
        if isinstance(out, list):  # raw per-level outputs (export_raw): decode them here
            return decode(out, int(model.bins), tuple(model.strides))  # type: ignore[arg-type]
        return out

    return run


def open_onnx(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session; an unreadable or non-ONNX file is an InputError."""
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise InputError(path, "<file>", "an ONNX file", "a directory" if p.is_dir() else "no such path")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(p), exact_int8_session(options), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for malformed models
        found = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}"
        raise InputError(path, "<file>", "a valid ONNX model", found) from None


def onnx_input_geometry(session: Any) -> tuple[int | None, int | None]:
    """(static batch or None, static square image size or None) of the session's input."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4:
        raise InputError(_session_name(session), "inputs[0]", "a 4-D image input [B, 3, S, S]", str(shape))
    batch = shape[0] if isinstance(shape[0], int) else None
    h, w = shape[2], shape[3]
    size = h if isinstance(h, int) and h == w else None
    return batch, size


def _session_name(session: Any) -> str:
    return str(getattr(session, "_model_path", None) or "<onnx model>")


def onnx_predictor(session: Any, nc: int) -> tuple[Predictor, int | None]:
    """A predictor over an onnxruntime session (padding partial batches when the batch is static)."""
    name = _session_name(session)
    outputs = [o.name for o in session.get_outputs()]
    wanted = ["boxes", "scores"] if {"boxes", "scores"} <= set(outputs) else outputs[:2]
    if len(wanted) != 2:
        raise InputError(name, "outputs", ONNX_EXPECTED, f"outputs {outputs}")
    input_name = session.get_inputs()[0].name
    static_batch, _ = onnx_input_geometry(session)

    def run(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.numpy().astype(np.float32, copy=False)
        n = len(x)
        chunks = []
        step = static_batch or n
        for i in range(0, n, step):
            part = x[i : i + step]
            if static_batch and len(part) < static_batch:  # pad a partial last batch
                pad = np.zeros((static_batch - len(part), *part.shape[1:]), dtype=np.float32)
                part = np.concatenate([part, pad])
            boxes, scores = session.run(wanted, {input_name: np.ascontiguousarray(part)})
            take = min(step, n - i)
            chunks.append((boxes[:take], scores[:take]))
        boxes = torch.from_numpy(np.concatenate([c[0] for c in chunks]))
        scores = torch.from_numpy(np.concatenate([c[1] for c in chunks]))
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 3 or scores.shape[-1] != nc:
            raise InputError(
                name,
                "outputs",
                f"{ONNX_EXPECTED} with nc={nc} (the dataset's classes)",
                f"shapes {tuple(boxes.shape)} and {tuple(scores.shape)}",
            )
        return boxes, scores

    return run, static_batch


def predict_split(
    predictor: Predictor, split: DetectionSplit, imgsz: int, batch: int, nms: NMSConfig, workers: int = 0
) -> tuple[list[Detections], list[int]]:
    """Detections in original-image pixels for every image of the split, with their COCO image ids."""
    loader = make_loader(split, imgsz, batch, augment=False, mosaic=False, workers=workers, shuffle=False)
    dets: list[Detections] = []
    ids: list[int] = []
    for images, _, metas in loader:
        boxes, scores = predictor(images)
        for det, meta in zip(non_max_suppression(boxes, scores, nms), metas, strict=True):
            dets.append(det.rescaled(meta.letterbox, meta.orig_width, meta.orig_height))
            ids.append(meta.image_id)
    return dets, ids


def evaluate_model(
    model: nn.Module | Any | str | Path,
    split: DetectionSplit,
    imgsz: int | None = None,
    batch: int = 16,
    nms: NMSConfig | None = None,
    workers: int = 0,
    gt_from_file: bool = False,
) -> EvalResult:
    """COCO mAP of a detector on a split.

    `model` is a torch Detector (run on CPU in eval mode; its train/eval mode is restored afterwards), an
    onnxruntime InferenceSession, or the path of an ONNX file. `imgsz` defaults to the ONNX input size and
    is required for torch models.
    """
    nms = nms or NMSConfig()
    start = time.perf_counter()
    if isinstance(model, nn.Module):
        if imgsz is None:
            raise ValueError("imgsz is required to evaluate a torch model")
        if int(getattr(model, "nc", split.nc)) != split.nc:
            raise InputError(split.source, "categories", f"{model.nc} classes (as the model)", f"{split.nc} classes")
        was_training = model.training
        model.eval()
        try:
            dets, ids = predict_split(torch_predictor(model), split, imgsz, batch, nms, workers)
        finally:
            model.train(was_training)
    else:
        session = open_onnx(model) if isinstance(model, str | Path) else model
        predictor, _ = onnx_predictor(session, split.nc)
        _, size = onnx_input_geometry(session)
        if imgsz is None:
            if size is None:
                raise InputError(
                    _session_name(session), "inputs[0]", "a static image size (or pass --imgsz)", "a dynamic one"
                )
            imgsz = size
        elif size is not None and size != imgsz:
            raise InputError(OPTION, "imgsz", f"{size} (the ONNX model's fixed input size)", str(imgsz))
        dets, ids = predict_split(predictor, split, imgsz, batch, nms, workers)
    scores = coco_map(ground_truth(split, gt_from_file), coco_results(dets, ids, split.category_ids))
    return EvalResult(
        map=scores.map, map50=scores.map50, images=len(ids), imgsz=imgsz, seconds=time.perf_counter() - start
    )
