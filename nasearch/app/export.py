"""`nasearch export`: an architecture (from a search run, a YAML, or a trained checkpoint) to deployable files.

Formats: `yaml` (the architecture), `torch` (a slim checkpoint: architecture + weights), `onnx` (the fused
deploy form, opset >= 17, decoded `boxes` and `scores`, or `detections` with NMS in the graph), `onnx-int8`
(the QDQ graph of PTQ, calibrated on --data), `engine` (a TensorRT engine; needs TensorRT and a GPU).
Every ONNX file passes the ONNX checker and is run under ONNX Runtime against PyTorch on the same input;
the differences and the tolerance they are held to are written to `export.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasearch import atomic, yamlio
from nasearch.data import load_split
from nasearch.errors import OPTION, InputError
from nasearch.export.nms import DETECTION_COLUMNS, DetectorWithNMS
from nasearch.export.verify import verify_float, verify_int8, verify_nms
from nasearch.latency.tensorrt_backend import build_serialized, gpu_status
from nasearch.nn.inspect import fused_copy
from nasearch.onnxio.export import DECODED_OUTPUTS, export_detector, export_module
from nasearch.onnxio.qdq import quantize_qdq
from nasearch.onnxio.spec import Int8Spec, int8_spec
from nasearch.quant.calibration import calibration_batches, calibration_split
from nasearch.space import Architecture, build_model, load_arch
from nasearch.train.checkpoint import load_checkpoint, save_checkpoint
from nasearch.validation import check_imgsz

FORMATS = ("yaml", "torch", "onnx", "onnx-int8", "engine")
Log = Callable[[str], None]


@dataclass
class Source:
    """What is exported: the architecture, a model in eval mode, and where it came from."""

    arch: Architecture
    model: nn.Module
    origin: str
    trained: bool
    checkpoint: dict[str, Any] | None = None


@dataclass
class ExportOptions:
    formats: list[str]
    out: Path
    imgsz: int | None = None
    batch: int = 1
    nms: bool = False
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    data: str | None = None
    calib_images: int = 128
    calibration: str = "minmax"
    target: str | None = None  # cpu | tensorrt; default tensorrt when an engine is asked for
    opset: int = 17
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def parse_formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(
            OPTION, "format", f"a comma-separated list of {', '.join(FORMATS)}", repr(bad[0] if bad else text)
        )
    return list(dict.fromkeys(formats))


def _trial_arch(run_dir: Path, trial: int) -> Architecture:
    """The architecture of trial N of a search run (its YAML file, else the study's record)."""
    from nasearch.search.results import arch_path  # the search's modules load optuna and pandas

    path = arch_path(run_dir, trial)
    if path.is_file():
        return load_arch(path)
    from nasearch.search.record import TrialRecord
    from nasearch.search.study import RunInfo, load_study

    info = RunInfo.load(run_dir)
    study = load_study(info.storage, info.study_name, readonly=True)
    name = info.study_name
    trials = [TrialRecord.from_trial(t, name) for t in study.get_trials(deepcopy=False) if t.number == trial]
    text = trials[0].arch_yaml if trials else None
    if not text:
        found = f"{len(study.trials)} trials" if not trials else "a trial without an architecture"
        raise InputError(run_dir, "--trial", f"a trial number of this run with an architecture ({trial})", found)
    return Architecture.from_dict(yamlio.loads(text, f"{run_dir}:trial {trial}"), f"{run_dir}:trial {trial}")


def resolve_source(ref: str, trial: int | None, seed: int = 0, log: Log | None = None) -> Source:
    """RUN_DIR with --trial N, a checkpoint (.pt), or an architecture YAML / preset name."""
    path = Path(ref)
    if trial is not None:
        if not path.is_dir():
            raise InputError(ref, "<dir>", "a search run directory (with --trial)", "not a directory")
        arch = _trial_arch(path, trial)
        return _untrained(arch, f"{ref} trial {trial}", seed, log)
    if path.is_dir():
        raise InputError(
            ref,
            "<dir>",
            "--trial N with a search run directory (or give ARCH.yaml or CKPT)",
            "a directory without --trial",
        )
    if path.suffix in (".pt", ".pth"):
        model, arch, state = load_checkpoint(path)
        return Source(arch, model, str(path), True, state)
    return _untrained(load_arch(ref), ref, seed, log)


def _untrained(arch: Architecture, origin: str, seed: int, log: Log | None) -> Source:
    if log is not None:
        log(
            f"export: {origin} has no weights; exporting freshly initialised weights (seed {seed}) -- "
            "train it (`nasearch train`) for a useful detector"
        )
    torch.manual_seed(seed)
    return Source(arch, build_model(arch).eval(), origin, False)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_entry(path: Path, **info: Any) -> dict[str, Any]:
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": _sha256(path), **info}


def check_input(opts: ExportOptions, imgsz: int) -> np.ndarray:
    """The verification input: a real letterboxed image when --data is given, else seeded noise."""
    if opts.data:
        batches = calibration_batches(load_split(opts.data, "val"), imgsz, opts.batch, opts.seed)
        x = np.concatenate(batches)
        if len(x) < opts.batch:
            x = np.concatenate([x] * (opts.batch // len(x) + 1))[: opts.batch]
        return x
    return np.random.default_rng(opts.seed).random((opts.batch, 3, imgsz, imgsz), dtype=np.float32)


def _engine_precondition(formats: list[str]) -> None:
    if "engine" not in formats:
        return
    ok, reason = gpu_status()
    if not ok:
        raise InputError(
            OPTION,
            "format",
            "engine only on a machine with TensorRT >= 10 and an NVIDIA GPU "
            "(export onnx / onnx-int8 here and build the engine there)",
            f"engine ({reason})",
        )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def export(source: Source, opts: ExportOptions, log: Log = _log) -> dict[str, Any]:
    """Write every requested format into `opts.out`; return (and write) the manifest `export.json`."""
    formats = opts.formats
    _engine_precondition(formats)
    if "onnx-int8" in formats and not opts.data:
        raise InputError(OPTION, "data", "a dataset to calibrate INT8 on (onnx-int8)", "nothing")
    if opts.nms and opts.batch != 1:
        raise InputError(OPTION, "batch", "1 with --nms (NMS in the graph is exported for batch 1)", str(opts.batch))
    arch = source.arch
    imgsz = int(opts.imgsz or (source.checkpoint or {}).get("train_args", {}).get("imgsz") or arch.data["imgsz"])
    check_imgsz(imgsz)
    out = opts.out
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out", "a directory to export into", "an existing file")
    out.parent.mkdir(parents=True, exist_ok=True)
    # every file is written into a staging folder beside `out` and moved in only when the export got through:
    # a failure (a tracer error, non-finite outputs, an interrupt) leaves `out` as it was
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        manifest, failures = _export_files(source, opts, stage, imgsz, lambda m: log(_moved(m, stage, out)))
        out.mkdir(exist_ok=True)
        for f in stage.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    manifest = _moved(manifest, stage, out)
    atomic.write_text(out / "export.json", json.dumps(manifest, indent=2) + "\n")
    if failures:
        raise RuntimeError(f"exported {', '.join(failures)} outside the stated tolerance; see {out / 'export.json'}")
    return manifest


def _moved(obj: Any, stage: Path, out: Path) -> Any:
    """Paths (in the manifest, in log lines) named where the files end up, not in the staging folder."""
    if isinstance(obj, str):
        return obj.replace(str(stage), str(out))
    if isinstance(obj, dict):
        return {k: _moved(v, stage, out) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_moved(v, stage, out) for v in obj]
    return obj


def _export_files(
    source: Source, opts: ExportOptions, out: Path, imgsz: int, log: Log
) -> tuple[dict[str, Any], list[str]]:
    formats = opts.formats
    arch = source.arch
    name = arch.name
    manifest: dict[str, Any] = {
        "arch": name,
        "hash": arch.hash,
        "source": source.origin,
        "trained": source.trained,
        "imgsz": imgsz,
        "batch": opts.batch,
        "opset": opts.opset,
        "files": {},
    }
    model = source.model.eval()
    fused = fused_copy(model)
    x = check_input(opts, imgsz)
    failures = []

    if "yaml" in formats:
        manifest["files"]["yaml"] = _file_entry(arch.save(out / f"{name}.yaml"))
    if "torch" in formats:
        manifest["files"]["torch"] = _file_entry(_save_torch(source, out / f"{name}.pt"))
    float_onnx = None
    if "onnx" in formats or "onnx-int8" in formats or "engine" in formats:
        float_onnx = export_detector(fused, out / f"{name}.onnx", imgsz, opts.batch, opset=opts.opset, fused=True)
        check = verify_float(float_onnx, model, x)
        entry = _file_entry(float_onnx, outputs=list(DECODED_OUTPUTS), verification=check)
        manifest["files"]["onnx"] = entry
        log(
            f"export: {float_onnx} (max |Δ| boxes {check['max_abs_diff_boxes_px']:.2e} px, scores "
            f"{check['max_abs_diff_scores']:.2e} vs PyTorch){'' if check['ok'] else ' -- ABOVE TOLERANCE'}"
        )
        failures += [] if check["ok"] else ["onnx"]
        if opts.nms:
            wrapped = DetectorWithNMS(fused, opts.conf, opts.iou, opts.max_det).eval()
            nms_path = export_module(
                wrapped, [torch.from_numpy(x)], out / f"{name}.nms.onnx", ["images"], ["detections"], opts.opset
            )
            check = verify_nms(nms_path, DetectorWithNMS(model, opts.conf, opts.iou, opts.max_det), x)
            manifest["files"]["onnx-nms"] = _file_entry(
                nms_path,
                outputs=["detections"],
                columns=list(DETECTION_COLUMNS),
                conf=opts.conf,
                iou=opts.iou,
                max_det=opts.max_det,
                verification=check,
            )
            log(
                f"export: {nms_path} (NMS in graph: {check['detections_onnx']} detections, "
                f"{check['matched_fraction']:.1%} matched to PyTorch)"
            )
            failures += [] if check["ok"] else ["onnx-nms"]
    target = opts.target or ("tensorrt" if "engine" in formats else "cpu")
    int8_onnx = None
    if "onnx-int8" in formats:
        spec = int8_spec(target, opts.calibration)
        int8_onnx = _export_int8(float_onnx, out / f"{name}.int8.onnx", opts, imgsz, spec, log)  # type: ignore[arg-type]
        check = verify_int8(int8_onnx, float_onnx, fused, x, imgsz)  # type: ignore[arg-type]
        manifest["files"]["onnx-int8"] = _file_entry(
            int8_onnx,
            target=target,
            activations=spec.activations,
            calibration=opts.calibration,
            int8_spec=spec.as_dict(),
            verification=check,
        )
        log(
            f"export: {int8_onnx} ({check['quantized_convs']} INT8 convs; mean |Δ| vs PyTorch fake-quant: "
            f"scores {check['mean_abs_diff_scores']:.2e}, boxes {check['mean_abs_diff_boxes_px']:.3f} px)"
        )
        failures += [] if check["ok"] else ["onnx-int8"]
    if "engine" in formats:
        source_onnx = int8_onnx or (out / f"{name}.onnx")
        manifest["files"]["engine"] = _build_engine(
            source_onnx, out / f"{name}.engine", "int8" if int8_onnx else "fp16", log
        )
    if "onnx" not in formats and float_onnx is not None:  # only an intermediate here
        manifest["files"].pop("onnx", None)
        float_onnx.unlink()
    manifest["ok"] = not failures
    return manifest, failures


def _save_torch(source: Source, path: Path) -> Path:
    """A slim checkpoint (architecture + weights, no optimizer), loadable by `load_checkpoint`."""
    state: dict[str, Any] = {
        "arch": source.arch.data,
        "model": {k: v.detach().cpu().clone() for k, v in source.model.state_dict().items()},
        "trained": source.trained,
    }
    if source.checkpoint is not None:
        for key in ("class_names", "metrics", "epoch", "best_fitness", "train_args"):
            if key in source.checkpoint:
                state[key] = source.checkpoint[key]
    return save_checkpoint(state, path)


def _export_int8(float_onnx: Path, path: Path, opts: ExportOptions, imgsz: int, spec: Int8Spec, log: Log) -> Path:
    split = calibration_split(opts.data, log)  # type: ignore[arg-type]
    calib = calibration_batches(split, imgsz, opts.calib_images, opts.seed)
    if opts.batch > 1:  # the graph's batch is static: calibrate on batches of distinct images
        calib = [np.concatenate(calib[i : i + opts.batch]) for i in range(0, len(calib) - opts.batch + 1, opts.batch)]
    return quantize_qdq(float_onnx, path, calib, spec)


def _build_engine(onnx_path: Path, path: Path, precision: str, log: Log) -> dict[str, Any]:
    import tensorrt as trt

    data = build_serialized(onnx_path, trt, precision)
    atomic.write_bytes(path, data)
    log(f"export: {path} (TensorRT {trt.__version__}, {precision}, from {onnx_path.name})")
    return _file_entry(path, precision=precision, tensorrt=str(trt.__version__), built_from=str(onnx_path))
