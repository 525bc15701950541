"""The `nasearch quantize` pipeline: checkpoint → float ONNX → PTQ, hybrid or QAT → COCO mAP and measured
ONNX Runtime latency of both models → one JSON report.

Targets: `cpu` writes unsigned activations (what x86 ONNX Runtime runs fastest), `tensorrt` symmetric
signed activations (what TensorRT's explicit INT8 consumes). The report says which was written and that
both latencies were measured on this machine's ONNX Runtime CPU provider.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasearch import atomic
from nasearch.data import load_split
from nasearch.data.records import DetectionSplit
from nasearch.errors import OPTION, InputError
from nasearch.eval.inference import evaluate_model, open_onnx
from nasearch.latency.fingerprint import cpu_name
from nasearch.latency.onnxrt import make_session, time_session
from nasearch.latency.stats import TimingPolicy
from nasearch.nn.inspect import fused_copy
from nasearch.onnxio.export import export_detector
from nasearch.onnxio.qdq import conv_node_names, quantize_qdq
from nasearch.onnxio.spec import CALIBRATION_METHODS, QUANTIZED_OPS, TARGETS, Int8Spec, int8_spec
from nasearch.quant.calibration import calibration_batches, calibration_split
from nasearch.quant.hybrid import SELECTION_RULE, HybridResult, search_float_layers, selection_split
from nasearch.quant.qat import run_qat
from nasearch.train.checkpoint import load_checkpoint
from nasearch.validation import check_imgsz, check_positive

MODES = ("ptq", "hybrid", "qat")
OPS = ("auto", "conv", "conv+act")
ACTIVATION_OPS = ("Sigmoid", "Mul")  # SiLU = x * sigmoid(x): in INT8 kernels on the CPU (QLinearSigmoid/Mul)
Log = Callable[[str], None]


@dataclass(frozen=True)
class QuantizeOptions:
    mode: str
    data: str
    out: Path
    max_drop: float = 0.5
    target: str = "cpu"
    method: str = "minmax"
    calib_images: int = 128
    imgsz: int | None = None
    threads: int = 1  # CPU threads of ONNX Runtime (latency, evaluation) and torch (QAT)
    eval_batch: int = 16
    max_float: int | None = None  # hybrid: at most this many float layers
    candidates: tuple[str, ...] | None = None  # hybrid: conv node names that may stay float (default: all)
    qat_epochs: int = 3
    qat_lr: float = 1e-3
    qat_batch: int = 16
    workers: int = 2
    seed: int = 0
    latency_rounds: int = 3
    ops: str = "auto"  # conv: convolutions only; conv+act: also SiLU's Sigmoid and Mul (ptq, cpu); auto: conv

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(OPTION, "mode", " | ".join(MODES), repr(self.mode))
        if self.target not in TARGETS:
            raise InputError(OPTION, "target", " | ".join(TARGETS), repr(self.target))
        if self.method not in CALIBRATION_METHODS:
            raise InputError(OPTION, "calibration", " | ".join(CALIBRATION_METHODS), repr(self.method))
        if self.ops not in OPS:
            raise InputError(OPTION, "ops", " | ".join(OPS), repr(self.ops))
        if self.ops == "conv+act" and (self.mode != "ptq" or self.target != "cpu"):
            raise InputError(
                OPTION,
                "ops",
                "conv with hybrid, qat or the tensorrt target (layers are kept float "
                "or emulated per convolution, and TensorRT fuses activations itself)",
                self.ops,
            )
        if not 0 <= self.max_drop <= 100:
            raise InputError(OPTION, "max_drop", "mAP points between 0 and 100", str(self.max_drop))
        for name, value in (
            ("calib-images", self.calib_images),
            ("threads", self.threads),
            ("qat-epochs", self.qat_epochs),
            ("qat-batch", self.qat_batch),
        ):
            check_positive(value, name.replace("-", "_"))
        check_imgsz(self.imgsz)

    def quantized_ops(self) -> tuple[str, ...]:
        # auto = conv: INT8 SiLU activations cost yolov8n 1.70 mAP points against 0.56 (benchmarks/README.md)
        return QUANTIZED_OPS + ACTIVATION_OPS if self.ops == "conv+act" else QUANTIZED_OPS

    def ptq_config(self) -> Int8Spec:
        return int8_spec(self.target, self.method, self.quantized_ops())


def measure_latencies(paths: Sequence[Path], threads: int, rounds: int = 3) -> list[dict[str, float]]:
    """Median ONNX Runtime CPU latency of each model, measured in interleaved rounds (fair on a busy host).

    Each round times every model until its median is stable; the figure is the median over rounds.
    """
    policy = TimingPolicy(max_seconds=10.0)
    sessions = [make_session(p, threads, "CPUExecutionProvider") for p in paths]
    feeds = []
    for s in sessions:
        shape = [int(d) for d in s.get_inputs()[0].shape]
        feeds.append({s.get_inputs()[0].name: np.random.default_rng(0).random(shape, dtype=np.float32)})
    medians: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for i, (s, f) in enumerate(zip(sessions, feeds, strict=True)):
            medians[i].append(time_session(s, f, policy).median_ms)
    return [{"median_ms": statistics.median(m), "rounds": [round(v, 4) for v in m]} for m in medians]


def _write_json(doc: dict[str, Any], path: Path) -> None:
    atomic.write_text(path, json.dumps(doc, indent=2) + "\n")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def run_quantize(ckpt: str | Path, opts: QuantizeOptions, log: Log = _stderr) -> dict[str, Any]:
    """Run one mode end to end; returns the report (also written to OUT/quantize.json)."""
    opts.check()
    torch.set_num_threads(opts.threads)
    started = time.perf_counter()
    model, arch, state = load_checkpoint(ckpt)
    val = load_split(opts.data, "val")
    if val.nc != arch.data["nc"]:
        raise InputError(
            opts.data, "categories", f"{arch.data['nc']} classes (as the checkpoint {ckpt})", f"{val.nc} classes"
        )
    select_val = None
    if opts.mode == "hybrid":  # float layers are chosen on one half, every reported figure is the other's
        if len(val) < 2:
            raise InputError(
                opts.data,
                "val",
                "at least 2 val images with --mode hybrid (one half selects the float layers, the other reports)",
                f"{len(val)} image",
            )
        select_val, val = selection_split(val)
    saved = state.get("train_args") if isinstance(state.get("train_args"), dict) else {}
    imgsz = int(opts.imgsz or saved.get("imgsz") or arch.data["imgsz"])
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    config = opts.ptq_config()
    calib = calibration_batches(calibration_split(opts.data, log), imgsz, opts.calib_images, opts.seed)
    log(
        f"quantize: {arch.name} at {imgsz} px, mode {opts.mode}, target {opts.target} "
        f"({config.activations} activations), {config.method} calibration on {len(calib)} images, "
        f"evaluation on {len(val)} val images"
    )

    def evaluate(path: Path, split: DetectionSplit = val) -> float:
        session = open_onnx(path, threads=opts.threads)
        return float(evaluate_model(session, split, imgsz, batch=opts.eval_batch).map)

    fused = fused_copy(model)
    float_onnx = export_detector(fused, out / "model.float.onnx", imgsz, fused=True)
    int8_onnx = out / "model.int8.onnx"
    if opts.mode == "hybrid":
        check_candidates(float_onnx, opts, config)
    map_float = evaluate(float_onnx)
    log(f"quantize: float ONNX mAP50-95 {map_float:.3f}")
    extra: dict[str, Any] = {}
    float_layers: list[str] = []
    ptq_path = quantize_qdq(float_onnx, out / "model.ptq.onnx" if opts.mode != "ptq" else int8_onnx, calib, config)
    map_ptq = evaluate(ptq_path)
    log(f"quantize: PTQ INT8 mAP50-95 {map_ptq:.3f} (drop {map_float - map_ptq:.3f})")
    extra["map_ptq"] = round(map_ptq, 4)
    map_int8 = map_ptq
    if opts.mode == "hybrid":
        assert select_val is not None
        selecting = lambda path: evaluate(path, select_val)  # noqa: E731
        sel_float, sel_ptq = selecting(float_onnx), selecting(ptq_path)
        log(f"quantize: selection half ({len(select_val)} images): float {sel_float:.3f}, PTQ {sel_ptq:.3f}")
        result = _hybrid(float_onnx, int8_onnx, calib, selecting, opts, config, sel_float, sel_ptq, log)
        float_layers = list(result.float_layers)
        map_int8 = evaluate(int8_onnx)
        extra.update(
            {
                "sensitivity": dict(sorted(result.sensitivity.items(), key=lambda kv: -kv[1])),
                "steps": [{"float_layers": n, "map": round(a, 4)} for n, a in result.steps],
                "reached": map_float - map_int8 <= opts.max_drop,
                "max_drop": opts.max_drop,
                "selection": {
                    "map_float": round(sel_float, 4),
                    "map_ptq": round(sel_ptq, 4),
                    "map_int8": round(result.int8_accuracy, 4),
                    "drop": round(result.drop, 4),
                },
                "split": {
                    "rule": SELECTION_RULE,
                    "selection_images": len(select_val),
                    "report_images": len(val),
                    "selection_image_ids": [r.image_id for r in select_val.records],
                    "report_image_ids": [r.image_id for r in val.records],
                },
                "figures_on": "report half (map_float, map_ptq, map_int8, drop); sensitivity and steps "
                "on the selection half",
            }
        )
    elif opts.mode == "qat":
        map_int8, qat_info = run_qat(fused, float_onnx, ptq_path, int8_onnx, calib, evaluate, opts, imgsz, log)
        extra.update(qat_info)
    paths = [float_onnx, int8_onnx] + ([ptq_path] if opts.mode == "hybrid" and float_layers else [])
    log(
        f"quantize: timing {len(paths)} models on ONNX Runtime CPU ({opts.threads} thread(s), "
        f"{opts.latency_rounds} interleaved rounds)"
    )
    timings = measure_latencies(paths, opts.threads, opts.latency_rounds)
    lat_float, lat_int8 = timings[0]["median_ms"], timings[1]["median_ms"]
    if len(timings) > 2:
        extra["latency_all_int8_ms"] = round(timings[2]["median_ms"], 4)
        extra["latency_cost_ms"] = round(lat_int8 - timings[2]["median_ms"], 4)
    doc = {
        "map_float": round(map_float, 4),
        "map_int8": round(map_int8, 4),
        "drop": round(map_float - map_int8, 4),
        "latency_float_ms": round(lat_float, 4),
        "latency_int8_ms": round(lat_int8, 4),
        "float_layers": float_layers,
        "mode": opts.mode,
        "speedup": round(lat_float / lat_int8, 3) if lat_int8 > 0 else None,
        "latency_measured": True,
        "latency_backend": "onnxruntime",
        "latency_device": cpu_name(),
        "latency_threads": opts.threads,
        "latency_rounds": {"float": timings[0]["rounds"], "int8": timings[1]["rounds"]},
        "target": opts.target,
        "activations": config.activations,
        "int8_spec": config.as_dict(),
        "calibration": {"method": config.method, "images": len(calib), "per_channel_weights": config.per_channel},
        "quantized_ops": list(config.op_types),
        "imgsz": imgsz,
        "val_images": len(val),
        "arch": arch.name,
        "checkpoint": str(ckpt),
        "float_onnx": str(float_onnx),
        "int8_onnx": str(int8_onnx),
        "seconds": round(time.perf_counter() - started, 1),
        **extra,
    }
    _write_json(doc, out / "quantize.json")
    log(
        f"quantize: mAP50-95 float {map_float:.3f} -> INT8 {map_int8:.3f} (drop {doc['drop']:.3f}); latency "
        f"{lat_float:.2f} -> {lat_int8:.2f} ms measured (x{doc['speedup']}); float layers: {len(float_layers)} "
        f"-> {out / 'quantize.json'}"
    )
    return doc


def check_candidates(float_onnx: Path, opts: QuantizeOptions, config: Int8Spec) -> list[str]:
    """The layers hybrid may keep in float: --candidates (checked against the graph) or every conv."""
    names = conv_node_names(float_onnx, QUANTIZED_OPS)
    candidates = list(opts.candidates) if opts.candidates else names
    unknown = [c for c in candidates if c not in names]
    if unknown:
        raise InputError(
            OPTION, "candidates", f"conv node names of the exported model, e.g. {names[0]}", repr(unknown[0])
        )
    return candidates


def _hybrid(
    float_onnx: Path,
    int8_onnx: Path,
    calib: list[np.ndarray],
    evaluate: Callable[[Path], float],
    opts: QuantizeOptions,
    config: Int8Spec,
    map_float: float,
    map_ptq: float,
    log: Log,
) -> Any:
    """The fewest float layers that bring the drop within `max_drop` (sensitivity of every conv first)."""
    if map_float - map_ptq <= opts.max_drop:
        log(f"quantize: plain PTQ is within --max-drop {opts.max_drop}; no layer kept in float")
        quantize_qdq(float_onnx, int8_onnx, calib, config)
        return HybridResult(map_float, map_ptq, [], steps=[(0, map_ptq)])
    candidates = check_candidates(float_onnx, opts, config)
    log(f"quantize: measuring the sensitivity of {len(candidates)} layers (one PTQ + evaluation each)")
    cache: dict[str, float] = {}

    def cached(path: Path) -> float:  # the float model is evaluated once already
        key = str(path)
        if key == str(float_onnx):
            return cache.setdefault(key, map_float)
        return evaluate(path)

    result = search_float_layers(
        float_onnx, int8_onnx, calib, cached, opts.max_drop, config, opts.max_float, candidates
    )
    log(
        f"quantize: {len(result.float_layers)} float layer(s) -> mAP50-95 {result.int8_accuracy:.3f} "
        f"(drop {result.drop:.3f}{'' if result.drop <= opts.max_drop else ', above --max-drop'})"
    )
    return result
