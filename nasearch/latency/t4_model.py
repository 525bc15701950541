"""A roofline latency model of TensorRT on an NVIDIA T4, per layer of the fused network.

Each compute kernel costs the larger of its FLOPs over the tensor-core peak (scaled by a fitted
efficiency and by wave quantisation over the T4's 40 SMs) and its bytes over the memory bandwidth,
plus a per-kernel launch cost; standalone memory kernels (pooling, resize, softmax) cost bytes over
bandwidth plus a launch; pointwise ops and concats that TensorRT fuses or elides cost a fitted share
of their bytes; a fixed per-inference overhead completes the sum.

The efficiencies are fitted only on the published T4 calibration set (YOLOv6 3.0 and YOLO-NAS,
`CALIBRATION` below); every figure this module returns is a prediction (`"measured": false`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasearch.errors import InputError
from nasearch.latency.graph import Op, trace_ops
from nasearch.space import Architecture, load_arch
from nasearch.space.arch import repo_root

# NVIDIA T4 (Turing TU104): published peaks
T4 = {"sms": 40, "fp16_tflops": 65.0, "int8_tops": 130.0, "fp32_tflops": 8.1, "bandwidth_gbs": 320.0}
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
PEAK = {"fp32": T4["fp32_tflops"] * 1e12, "fp16": T4["fp16_tflops"] * 1e12, "int8": T4["int8_tops"] * 1e12}
TILE_M, TILE_N, TILE_K, CTAS_PER_SM = 128, 64, 32, 2

# (preset, precision, batch, published ms per image, source)
CALIBRATION: list[tuple[str, str, int, float, str]] = [
    ("yolov6n", "fp16", 1, 1.28, "YOLOv6 README (TRT 7.2)"), ("yolov6n", "fp16", 32, 0.84, "YOLOv6 README (TRT 7.2)"),
    ("yolov6s", "fp16", 1, 2.95, "YOLOv6 README (TRT 7.2)"), ("yolov6s", "fp16", 32, 2.07, "YOLOv6 README (TRT 7.2)"),
    ("yolov6m", "fp16", 1, 5.71, "YOLOv6 README (TRT 7.2)"), ("yolov6m", "fp16", 32, 4.42, "YOLOv6 README (TRT 7.2)"),
    ("yolov6l", "fp16", 1, 10.20, "YOLOv6 README (TRT 7.2)"), ("yolov6l", "fp16", 32, 8.62, "YOLOv6 README (TRT 7.2)"),
    ("yolo_nas_s", "fp16", 1, 3.21, "super-gradients YOLONAS.md"),
    ("yolo_nas_m", "fp16", 1, 5.85, "super-gradients YOLONAS.md"),
    ("yolo_nas_l", "fp16", 1, 7.87, "super-gradients YOLONAS.md"),
    ("yolo_nas_s", "int8", 1, 2.36, "super-gradients YOLONAS.md"),
    ("yolo_nas_m", "int8", 1, 3.78, "super-gradients YOLONAS.md"),
    ("yolo_nas_l", "int8", 1, 4.78, "super-gradients YOLONAS.md"),
]
CALIBRATION_IMGSZ = 640

PARAM_NAMES = ("eff_fp16", "eff_int8", "eff_mem", "launch_us", "pointwise_share", "concat_share", "fixed_us")
PRIOR = {"eff_fp16": 0.4, "eff_int8": 0.3, "eff_mem": 0.6, "launch_us": 4.0, "pointwise_share": 0.2,
         "concat_share": 0.3, "fixed_us": 100.0}
BOUNDS = {"eff_fp16": (0.02, 1.0), "eff_int8": (0.02, 1.0), "eff_mem": (0.05, 1.0), "launch_us": (0.5, 30.0),
          "pointwise_share": (0.0, 1.5), "concat_share": (0.0, 1.5), "fixed_us": (1.0, 1000.0)}


def model_file() -> Path:
    return repo_root() / "latency_db" / "t4_model.json"


@dataclass(frozen=True)
class OpSummary:
    """What the model needs of one op, precision-independent (elements, not bytes)."""

    kind: str
    flops: float
    elems: int
    tiles: int
    k_util: float = 1.0  # share of the reduction (Cin·k²) tiles doing useful work


def _summarise(ops: list[Op]) -> list[OpSummary]:
    out = []
    for op in ops:
        tiles, k_util = 0, 1.0
        if op.kind == "compute":
            m = math.prod(op.out_shape) // max(op.channels_out, 1)
            tiles = math.ceil(m / TILE_M) * math.ceil(op.channels_out / TILE_N)
            k = max(1, round(op.flops / (2 * math.prod(op.out_shape))))
            k_util = k / (math.ceil(k / TILE_K) * TILE_K)
        out.append(OpSummary(op.kind, op.flops, op.weight_elems + op.act_elems, tiles, k_util))
    return out


@lru_cache(maxsize=256)
def _ops_for(arch_hash: str, arch_json: str, imgsz: int, batch: int) -> tuple[OpSummary, ...]:
    arch = Architecture.from_dict(json.loads(arch_json))
    return tuple(_summarise(trace_ops(arch, imgsz, batch)))


def ops_of(arch: Architecture, imgsz: int, batch: int) -> tuple[OpSummary, ...]:
    return _ops_for(arch.hash, json.dumps(arch.data), imgsz, batch)


def latency_ms(ops: tuple[OpSummary, ...], precision: str, params: dict[str, float]) -> float:
    """Predicted wall time of one batch, in milliseconds."""
    bpe = BYTES[precision]
    eff = params["eff_int8"] if precision == "int8" else params["eff_fp16"]
    peak = PEAK[precision] * (eff if precision != "fp32" else params["eff_fp16"])
    bw = T4["bandwidth_gbs"] * 1e9 * params["eff_mem"]
    launch = params["launch_us"] * 1e-6
    slots = T4["sms"] * CTAS_PER_SM
    total = params["fixed_us"] * 1e-6
    for op in ops:
        mem = op.elems * bpe / bw
        if op.kind == "compute":
            waves = math.ceil(op.tiles / slots)
            util = op.tiles / (waves * slots) if waves else 1.0
            total += max(op.flops / (peak * util * op.k_util), mem) + launch
        elif op.kind == "memory":
            total += mem + launch
        elif op.kind == "pointwise":
            total += params["pointwise_share"] * mem
        elif op.kind == "concat":
            total += params["concat_share"] * mem
    return total * 1e3


def _calibration_ops() -> list[tuple[tuple[OpSummary, ...], str, int, float, str]]:
    rows = []
    for name, precision, batch, ms, _src in CALIBRATION:
        arch = load_arch(name)
        rows.append((ops_of(arch, CALIBRATION_IMGSZ, batch), precision, batch, ms, name))
    return rows


def _vector_to_params(v: np.ndarray) -> dict[str, float]:
    return {n: float(np.exp(x)) if BOUNDS[n][0] > 0 else float(x) for n, x in zip(PARAM_NAMES, v, strict=True)}


def _params_to_vector(p: dict[str, float]) -> np.ndarray:
    return np.array([math.log(p[n]) if BOUNDS[n][0] > 0 else p[n] for n in PARAM_NAMES])


def _fit(rows: list, prior_weight: float = 0.05) -> dict[str, float]:
    from scipy.optimize import least_squares

    prior = _params_to_vector(PRIOR)

    def residuals(v: np.ndarray) -> np.ndarray:
        p = _vector_to_params(v)
        errs = [math.log(latency_ms(ops, prec, p) / batch / ms) for ops, prec, batch, ms, _ in rows]
        return np.concatenate([np.array(errs), prior_weight * (v - prior)])

    lo = np.array([math.log(BOUNDS[n][0]) if BOUNDS[n][0] > 0 else BOUNDS[n][0] for n in PARAM_NAMES])
    hi = np.array([math.log(BOUNDS[n][1]) if BOUNDS[n][0] > 0 else BOUNDS[n][1] for n in PARAM_NAMES])
    fit = least_squares(residuals, np.clip(prior, lo + 1e-9, hi - 1e-9), bounds=(lo, hi))
    return _vector_to_params(fit.x)


def fit_model(out: Path | None = None) -> dict:
    """Fit on the calibration set; store constants, parameters, residuals and leave-one-out errors."""
    rows = _calibration_ops()
    params = _fit(rows)
    points = []
    for (ops, prec, batch, ms, name), (_, _, _, _, src) in zip(rows, CALIBRATION, strict=True):
        pred = latency_ms(ops, prec, params) / batch
        points.append({"model": name, "precision": prec, "batch": batch, "published_ms": ms,
                       "predicted_ms": round(pred, 4), "error_pct": round(100 * (pred / ms - 1), 2), "source": src})
    loo = []
    for i, (ops, prec, batch, ms, name) in enumerate(rows):
        p = _fit(rows[:i] + rows[i + 1:])
        pred = latency_ms(ops, prec, p) / batch
        loo.append({"model": name, "precision": prec, "batch": batch, "published_ms": ms,
                    "predicted_ms": round(pred, 4), "error_pct": round(100 * (pred / ms - 1), 2)})
    doc = {
        "method": "roofline",
        "device": "NVIDIA T4 (TensorRT)",
        "constants": {**T4, "tile_m": TILE_M, "tile_n": TILE_N, "ctas_per_sm": CTAS_PER_SM,
                      "calibration_imgsz": CALIBRATION_IMGSZ},
        "params": {k: round(v, 6) for k, v in params.items()},
        "fit": points,
        "fit_mean_abs_error_pct": round(float(np.mean([abs(p["error_pct"]) for p in points])), 2),
        "leave_one_out": loo,
        "expected_mean_abs_error_pct": round(float(np.mean([abs(p["error_pct"]) for p in loo])), 2),
        "expected_max_abs_error_pct": round(float(np.max([abs(p["error_pct"]) for p in loo])), 2),
    }
    path = out or model_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return doc


@lru_cache(maxsize=1)
def _stored_params() -> dict[str, float]:
    path = model_file()
    if not path.exists():
        raise InputError(str(path), "<file>", "the fitted T4 model (run `python -m nasearch.latency.t4_model`)",
                         "no such file")
    return json.loads(path.read_text())["params"]


def predict_t4(arch: Architecture, precision: str = "fp16", imgsz: int = 640, batch: int = 1) -> dict:
    """Predicted TensorRT latency of one batch on a T4 (and per image)."""
    if precision not in ("fp16", "int8", "fp32"):
        raise InputError("--precision", "precision", "fp16, int8 or fp32", repr(precision))
    ms = latency_ms(ops_of(arch, imgsz, batch), precision, _stored_params())
    return {"target": "t4-tensorrt", "precision": precision, "imgsz": imgsz, "batch": batch,
            "predicted_ms": round(ms, 4), "per_image_ms": round(ms / batch, 4), "method": "roofline",
            "measured": False}


if __name__ == "__main__":
    result = fit_model()
    print(json.dumps({k: result[k] for k in ("params", "fit_mean_abs_error_pct", "expected_mean_abs_error_pct",
                                             "expected_max_abs_error_pct")}, indent=2))
    for row in result["fit"]:
        print(row)
