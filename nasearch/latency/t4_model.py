"""A roofline latency model of TensorRT on an NVIDIA T4, per layer of the fused network.

Each convolution costs the larger of its FLOPs over the tensor-core peak (scaled by a fitted
efficiency and by how well its GEMM fills the T4's 40 SMs with the best of a few CTA tiles, as
TensorRT's tactic search would pick) and its bytes over the memory bandwidth, plus a launch cost;
standalone memory kernels (pooling, resize, softmax) cost bytes over bandwidth plus a launch;
pointwise ops that TensorRT fuses cost a fitted share of their bytes; concats cost nothing (TensorRT
elides them, producers writing into the slices; when fitted freely their share went to its bound 0);
a fixed per-inference overhead completes the sum.

Precision is per layer: an INT8 engine may keep some convolutions in FP16 (`float_layers`, the hybrid
form `nasearch quantize --mode hybrid` writes), and each switch between INT8 and FP16 costs a reformat
kernel. Engines are assumed built with `tensorrt_backend.builder_flag_names` (the one definition).

Calibration: published T4 figures only, read from `latency_db/t4_calibration.csv` (source and
TensorRT version per row). The model predicts TensorRT 10 (`REFERENCE_GENERATION`); figures of other
generations (the YOLOv6 README's TensorRT 7.2, Deci's unstated version) enter through one fitted
latency factor per generation. The stored errors are leave-one-family-out: every figure of a family
(all its sizes, batches, precisions and generations) is left out of the fit that predicts it.
Every figure this module returns is a prediction (`"measured": false`).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasearch.errors import OPTION, InputError
from nasearch.latency.graph import Op, trace_ops
from nasearch.latency.tensorrt_backend import builder_flag_names
from nasearch.resources import shipped
from nasearch.space import Architecture, load_arch

# NVIDIA T4 (Turing TU104): published peaks
T4 = {"sms": 40, "fp16_tflops": 65.0, "int8_tops": 130.0, "fp32_tflops": 8.1, "bandwidth_gbs": 320.0}
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
PEAK = {"fp32": T4["fp32_tflops"] * 1e12, "fp16": T4["fp16_tflops"] * 1e12, "int8": T4["int8_tops"] * 1e12}
# CTA tiles (M, N, CTAs resident per SM, relative efficiency of the tile's inner loop): an assumption
# in the spirit of CUTLASS/TensorRT tactics, where small tiles fill small GEMMs but reuse less data.
TILES = ((128, 128, 1, 1.0), (128, 64, 2, 0.9), (64, 64, 2, 0.8), (64, 32, 4, 0.65))
TILE_K = 32
# Split-K (several CTAs share one output tile's reduction, then a reduction pass): what fills the SMs when
# a layer's output is small (20×20 at stride 32) but its reduction is long; each split keeps >= 128 of K.
SPLIT_K = (1, 2, 4, 8)
SPLIT_K_MIN, SPLIT_K_EFF = 128, 0.9
CALIBRATION_IMGSZ = 640
REFERENCE_GENERATION = "trt10"
PRECISIONS = ("fp16", "int8", "fp32")

BASE_PARAMS = ("eff_fp16", "eff_int8", "eff_mem", "launch_us", "pointwise_share", "fixed_us")
PRIOR = {"eff_fp16": 0.4, "eff_int8": 0.3, "eff_mem": 0.6, "launch_us": 4.0, "pointwise_share": 0.2, "fixed_us": 100.0}
# Search bounds (wide) and physically plausible ranges (narrower): a fitted value outside its plausible
# range, or pinned on a bound, is a warning in the fit output and in the stored model.
BOUNDS = {
    "eff_fp16": (0.02, 1.0),
    "eff_int8": (0.02, 1.0),
    "eff_mem": (0.05, 1.0),
    "launch_us": (0.5, 30.0),
    "pointwise_share": (0.0, 1.5),
    "fixed_us": (1.0, 1000.0),
}
PLAUSIBLE = {
    "eff_fp16": (0.05, 0.8),
    "eff_int8": (0.05, 0.8),
    "eff_mem": (0.2, 0.9),
    "launch_us": (1.0, 15.0),
    "pointwise_share": (0.0, 1.0),
    "fixed_us": (5.0, 500.0),
}
GEN_PRIOR, GEN_BOUNDS, GEN_PLAUSIBLE = 1.0, (0.4, 2.5), (0.6, 1.6)
PRIOR_WEIGHT = 0.05


def model_file() -> Path:
    return shipped("latency_db", "t4_model.json")


def calibration_file() -> Path:
    return shipped("latency_db", "t4_calibration.csv")


# ---------------------------------------------------------------- published figures


@dataclass(frozen=True)
class Figure:
    """One published T4 latency (ms per image)."""

    model: str
    family: str
    precision: str
    batch: int
    ms: float
    generation: str
    source: str


FIGURE_FIELDS = (
    "model",
    "family",
    "precision",
    "batch",
    "ms_per_image",
    "generation",
    "tensorrt",
    "source_title",
    "source_url",
)


def load_figures(path: Path) -> list[Figure]:
    """Rows of a calibration (or held-out) CSV; a malformed row is an input error naming it."""
    if not path.exists():
        raise InputError(str(path), "<file>", "a CSV of published T4 latencies", "no such file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in FIGURE_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise InputError(str(path), "<header>", "columns " + ", ".join(FIGURE_FIELDS), f"missing {missing}")
        out = []
        for i, row in enumerate(reader, start=2):
            where = f"line {i}"
            if row["precision"] not in PRECISIONS:
                raise InputError(str(path), f"{where}.precision", " | ".join(PRECISIONS), repr(row["precision"]))
            try:
                batch, ms = int(row["batch"]), float(row["ms_per_image"])
            except ValueError:
                raise InputError(
                    str(path),
                    f"{where}.batch/ms_per_image",
                    "an integer and a number",
                    f"{row['batch']!r}, {row['ms_per_image']!r}",
                ) from None
            if batch < 1 or not ms > 0:
                raise InputError(str(path), f"{where}.ms_per_image", "batch >= 1 and ms > 0", f"{batch}, {ms}")
            out.append(
                Figure(
                    row["model"],
                    row["family"],
                    row["precision"],
                    batch,
                    ms,
                    row["generation"],
                    f"{row['source_title']} <{row['source_url']}> ({row['tensorrt']})",
                )
            )
    return out


# ---------------------------------------------------------------- the op summary


KIND_CODES = {"compute": 0, "memory": 1, "pointwise": 2}  # anything else (concat) costs nothing


@dataclass(frozen=True, eq=False)
class OpTable:
    """What the model needs of a traced network, precision-independent (elements, not bytes): one entry
    per op, as arrays so that a fit evaluates thousands of networks quickly."""

    kind: np.ndarray  # KIND_CODES, 3 for free ops
    flops: np.ndarray
    elems: np.ndarray  # weights + activations read and written
    in_elems: np.ndarray  # activations read (what a precision reformat before the op moves)
    util: np.ndarray  # best share of the tensor-core peak its GEMM shape allows (tiles, waves, K padding)
    layers: tuple[str, ...]  # module path of each convolution, "" for other ops

    def conv_layers(self) -> list[str]:
        return [name for name, k in zip(self.layers, self.kind, strict=True) if k == 0 and name]


def gemm_util(m: int, n: int, k: int, sms: int = T4["sms"]) -> float:
    """The best, over `TILES` and `SPLIT_K`, of wave fill × tile padding × tile (and split) efficiency,
    times the K padding."""
    best = 0.0
    for tm, tn, ctas, eff in TILES:
        tiles_m, tiles_n = math.ceil(m / tm), math.ceil(n / tn)
        padding = (m / (tiles_m * tm)) * (n / (tiles_n * tn))
        for split in SPLIT_K:
            if split > 1 and k / split < SPLIT_K_MIN:
                break
            tiles, slots = tiles_m * tiles_n * split, sms * ctas
            fill = tiles / (math.ceil(tiles / slots) * slots)
            best = max(best, fill * padding * eff * (SPLIT_K_EFF if split > 1 else 1.0))
    return best * k / (math.ceil(k / TILE_K) * TILE_K)


def op_table(ops: list[Op]) -> OpTable:
    rows = []
    for op in ops:
        out_elems = math.prod(op.out_shape)
        util, flops = 1.0, op.flops
        if op.kind == "compute" and op.groups > 1:
            flops = 0.0  # grouped (depthwise) convolutions are no GEMM: CUDA cores, bound by their bytes
        elif op.kind == "compute":
            m = out_elems // max(op.channels_out, 1)
            k = max(1, round(op.flops / (2 * out_elems)))
            util = gemm_util(m, op.channels_out, k)
        rows.append(
            (KIND_CODES.get(op.kind, 3), flops, op.weight_elems + op.act_elems, max(op.act_elems - out_elems, 0), util)
        )
    cols = list(zip(*rows, strict=True)) if rows else [()] * 5
    return OpTable(
        np.array(cols[0], dtype=np.int8),
        *(np.array(c, dtype=float) for c in cols[1:]),
        tuple(op.layer if op.kind == "compute" else "" for op in ops),
    )


@lru_cache(maxsize=256)
def _ops_for(arch_hash: str, arch_json: str, imgsz: int, batch: int) -> OpTable:
    arch = Architecture.from_dict(json.loads(arch_json))
    return op_table(trace_ops(arch, imgsz, batch))


def ops_of(arch: Architecture, imgsz: int, batch: int) -> OpTable:
    return _ops_for(arch.hash, json.dumps(arch.data), imgsz, batch)


def module_path(name: str) -> str:
    """A float-layer name as the module path the trace records: ONNX node names from the exporter
    ("/stages.0/stages.0.1/cv1/conv/Conv") and module paths ("stages.0.1.cv1.conv") both work."""
    if not name.startswith("/"):
        return name
    parts: list[str] = []
    for part in name.strip("/").split("/")[:-1]:  # the last part is the op ("Conv")
        if parts and part.startswith(parts[-1] + "."):  # a container's child repeats the container's name
            parts[-1] = part
        else:
            parts.append(part)
    return ".".join(parts)


# ---------------------------------------------------------------- the model


def latency_ms(
    ops: OpTable, precision: str, params: dict[str, float], float_layers: frozenset[str] = frozenset()
) -> float:
    """Predicted wall time of one batch, in milliseconds, of the reference TensorRT generation.

    With `precision` int8, convolutions named in `float_layers` run in FP16, and so do the fused and
    memory ops that follow them until the next convolution; each switch costs a reformat kernel."""
    bw = T4["bandwidth_gbs"] * 1e9 * params["eff_mem"]
    launch = params["launch_us"] * 1e-6
    eff = {"int8": params["eff_int8"], "fp16": params["eff_fp16"], "fp32": params["eff_fp16"]}
    compute = ops.kind == 0
    kept = np.array([precision == "int8" and name in float_layers for name in ops.layers], dtype=bool)
    # bytes per element and throughput of each convolution, then carried forward to the ops after it
    own_bytes = np.where(kept, BYTES["fp16"], BYTES[precision]).astype(float)
    throughput = np.where(kept, PEAK["fp16"] * eff["fp16"], PEAK[precision] * eff[precision])
    last = np.maximum.accumulate(np.where(compute, np.arange(len(compute)), -1)) if len(compute) else compute
    start = BYTES["fp16"] if precision == "int8" else BYTES[precision]  # an INT8 engine's input is float
    cur_bytes = np.where(last >= 0, own_bytes[np.maximum(last, 0)], start)
    prev_bytes = np.concatenate([[start], cur_bytes[:-1]])
    conv = np.maximum(ops.flops / (throughput * ops.util), ops.elems * own_bytes / bw) + launch
    switch = (prev_bytes != own_bytes) * (ops.in_elems * (prev_bytes + own_bytes) / bw + launch)
    memory = ops.elems * cur_bytes / bw + launch
    pointwise = params["pointwise_share"] * ops.elems * cur_bytes / bw
    total = (
        params["fixed_us"] * 1e-6
        + np.sum(np.where(compute, conv + switch, 0.0))
        + np.sum(np.where(ops.kind == 1, memory, 0.0))
        + np.sum(np.where(ops.kind == 2, pointwise, 0.0))
    )
    return float(total) * 1e3


def _param_names(generations: Iterable[str]) -> tuple[str, ...]:
    gens = sorted({g for g in generations if g != REFERENCE_GENERATION})
    return BASE_PARAMS + tuple(f"gen_{g}" for g in gens)


def _bounds(name: str) -> tuple[float, float]:
    return GEN_BOUNDS if name.startswith("gen_") else BOUNDS[name]


def _plausible(name: str) -> tuple[float, float]:
    return GEN_PLAUSIBLE if name.startswith("gen_") else PLAUSIBLE[name]


def _prior(name: str) -> float:
    return GEN_PRIOR if name.startswith("gen_") else PRIOR[name]


def _to_vector(names: tuple[str, ...], p: dict[str, float]) -> np.ndarray:
    return np.array([math.log(p[n]) if _bounds(n)[0] > 0 else p[n] for n in names])


def _to_params(names: tuple[str, ...], v: np.ndarray) -> dict[str, float]:
    return {n: float(np.exp(x)) if _bounds(n)[0] > 0 else float(x) for n, x in zip(names, v, strict=True)}


def generation_factor(params: dict[str, float], generation: str) -> tuple[float, bool]:
    """Latency factor of a TensorRT generation against the reference; (1.0, False) when not fitted."""
    if generation == REFERENCE_GENERATION:
        return 1.0, True
    key = f"gen_{generation}"
    return (params[key], True) if key in params else (GEN_PRIOR, False)


Row = tuple[Figure, OpTable]


def predict_figure(fig: Figure, ops: OpTable, params: dict[str, float]) -> float:
    factor, _ = generation_factor(params, fig.generation)
    return factor * latency_ms(ops, fig.precision, params) / fig.batch


def fit_params(rows: list[Row], prior_weight: float = PRIOR_WEIGHT) -> dict[str, float]:
    """Least squares on log errors with a weak prior; generations without figures keep no factor."""
    from scipy.optimize import least_squares

    names = _param_names(fig.generation for fig, _ in rows)
    prior = _to_vector(names, {n: _prior(n) for n in names})

    def residuals(v: np.ndarray) -> np.ndarray:
        p = _to_params(names, v)
        errs = [math.log(predict_figure(fig, ops, p) / fig.ms) for fig, ops in rows]
        return np.concatenate([np.array(errs), prior_weight * (v - prior)])

    lo = np.array([math.log(_bounds(n)[0]) if _bounds(n)[0] > 0 else _bounds(n)[0] for n in names])
    hi = np.array([math.log(_bounds(n)[1]) if _bounds(n)[0] > 0 else _bounds(n)[1] for n in names])
    fit = least_squares(residuals, np.clip(prior, lo + 1e-9, hi - 1e-9), bounds=(lo, hi))
    return _to_params(names, fit.x)


def plausibility_warnings(params: dict[str, float]) -> list[str]:
    """A parameter outside its stated plausible range, or pinned on a search bound (within 1%)."""
    out = []
    for name, value in params.items():
        lo, hi = _bounds(name)
        plo, phi = _plausible(name)
        if (lo > 0 and value <= lo * 1.01) or (lo == 0 and value <= 1e-3) or value >= hi * 0.99:
            out.append(f"{name} = {value:.4g} is pinned on its bound [{lo}, {hi}]")
        elif not plo <= value <= phi:
            out.append(f"{name} = {value:.4g} is outside its plausible range [{plo}, {phi}]")
    return out


def _point(fig: Figure, pred: float, params: dict[str, float]) -> dict:
    _, known = generation_factor(params, fig.generation)
    return {
        "model": fig.model,
        "family": fig.family,
        "precision": fig.precision,
        "batch": fig.batch,
        "generation": fig.generation,
        "published_ms": fig.ms,
        "predicted_ms": round(pred, 4),
        "error_pct": round(100 * (pred / fig.ms - 1), 2),
        "generation_factor_fitted": known,
    }


def error_summary(points: list[dict]) -> dict:
    """Mean and worst absolute error (percent) per precision, over all figures and over the reference
    generation's; n is the number of figures."""
    out = {}
    for precision in sorted({p["precision"] for p in points}):
        for scope, sel in (
            ("all", lambda p: True),
            (REFERENCE_GENERATION, lambda p: p["generation"] == REFERENCE_GENERATION),
        ):
            errs = [abs(p["error_pct"]) for p in points if p["precision"] == precision and sel(p)]
            if errs:
                out[f"{precision}/{scope}"] = {
                    "n": len(errs),
                    "mean_abs_pct": round(float(np.mean(errs)), 2),
                    "worst_abs_pct": round(float(np.max(errs)), 2),
                }
    return out


def leave_one_family_out(rows: list[Row]) -> list[dict]:
    """Every family's figures predicted by a fit on the other families alone."""
    out = []
    for family in sorted({fig.family for fig, _ in rows}):
        train = [r for r in rows if r[0].family != family]
        params = fit_params(train)
        for fig, ops in rows:
            if fig.family == family:
                out.append({**_point(fig, predict_figure(fig, ops, params), params), "left_out": family})
    return out


def calibration_rows(figures: list[Figure]) -> tuple[list[Row], list[str]]:
    """Figures whose preset the DSL has, traced; the names of those it has not."""
    rows, unavailable = [], []
    for fig in figures:
        try:
            arch = load_arch(fig.model)
        except InputError:
            unavailable.append(fig.model)
            continue
        rows.append((fig, ops_of(arch, CALIBRATION_IMGSZ, fig.batch)))
    return rows, sorted(set(unavailable))


def fit_model(out: Path | None = None, calibration: Path | None = None) -> dict:
    """Fit on the calibration CSV; store parameters, fit and leave-one-family-out errors, warnings."""
    path_in = calibration or calibration_file()
    rows, unavailable = calibration_rows(load_figures(path_in))
    params = fit_params(rows)
    fit_points = [_point(fig, predict_figure(fig, ops, params), params) for fig, ops in rows]
    lofo = leave_one_family_out(rows)
    doc = {
        "method": "roofline",
        "device": "NVIDIA T4 (TensorRT)",
        "predicts": f"{REFERENCE_GENERATION} (TensorRT 10)",
        "builder_flags": {p: list(builder_flag_names(p)) for p in PRECISIONS},
        "calibration": str(path_in.relative_to(shipped())) if path_in.is_relative_to(shipped()) else str(path_in),
        "constants": {
            **T4,
            "tiles": [list(t) for t in TILES],
            "tile_k": TILE_K,
            "split_k": list(SPLIT_K),
            "split_k_min": SPLIT_K_MIN,
            "split_k_eff": SPLIT_K_EFF,
            "calibration_imgsz": CALIBRATION_IMGSZ,
        },
        "plausible": {n: list(_plausible(n)) for n in params},
        "params": {k: round(v, 6) for k, v in params.items()},
        "warnings": plausibility_warnings(params),
        "families": sorted({fig.family for fig, _ in rows}),
        "unavailable_presets": unavailable,
        "fit": fit_points,
        "fit_errors": error_summary(fit_points),
        "leave_one_family_out": lofo,
        "leave_one_family_out_errors": error_summary(lofo),
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
        raise InputError(
            str(path), "<file>", "the fitted T4 model (run `python -m nasearch.latency.t4_model`)", "no such file"
        )
    return json.loads(path.read_text())["params"]


def select_layers(ops: OpTable, names: Iterable[str], arch_name: str = "the network") -> frozenset[str]:
    """Convolutions named by ONNX node names, module paths or glob patterns of module paths ("head.*");
    a name or pattern that selects no convolution is an input error."""
    convs = ops.conv_layers()
    chosen: set[str] = set()
    for name in names:
        path = module_path(name)
        hits = fnmatch.filter(convs, path) if any(c in path for c in "*?[") else [path] if path in convs else []
        if not hits:
            raise InputError(OPTION, "float_layers", f"convolutions of {arch_name} (e.g. {convs[0]!r})", repr(name))
        chosen.update(hits)
    return frozenset(chosen)


def predict_t4(
    arch: Architecture, precision: str = "fp16", imgsz: int = 640, batch: int = 1, float_layers: Iterable[str] = ()
) -> dict:
    """Predicted TensorRT 10 latency of one batch on a T4 (and per image); `float_layers` (INT8 only)
    are convolutions kept in FP16 (see `select_layers`): the hybrid form."""
    if precision not in PRECISIONS:
        raise InputError(OPTION, "precision", "fp16, int8 or fp32", repr(precision))
    names = list(float_layers)
    if names and precision != "int8":
        raise InputError(OPTION, "float_layers", "only with --precision int8", precision)
    ops = ops_of(arch, imgsz, batch)
    kept = select_layers(ops, names, arch.name)
    ms = latency_ms(ops, precision, _stored_params(), kept)
    return {
        "target": "t4-tensorrt",
        "precision": precision,
        "mode": "hybrid" if kept else precision,
        "float_layers": len(kept),
        "imgsz": imgsz,
        "batch": batch,
        "predicted_ms": round(ms, 4),
        "per_image_ms": round(ms / batch, 4),
        "method": "roofline",
        "measured": False,
    }


def main(argv: list[str]) -> int:
    result = fit_model()
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("params", "warnings", "unavailable_presets", "fit_errors", "leave_one_family_out_errors")
            },
            indent=2,
        )
    )
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
