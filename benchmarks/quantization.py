"""Quantization benchmarks: is INT8 nearly free, and which blocks make it so?

Three parts; each writes a JSON file into --out and prints a table. Every latency is measured here, on
ONNX Runtime's CPU provider, in interleaved rounds (the median over rounds of each model's stable median).

  qarepvgg     trains a RepVGG- and a QARepVGG-based variant of one small YOLO-NAS-style architecture on
               the synthetic set, then quantizes both (PTQ, CPU u8 form and TensorRT s8 form) and reports
               float mAP, INT8 mAP, the drop, the INT8 speed-up, and how outlying the fused weights are.
               The QARepVGG paper's claim: RepVGG loses several mAP points under PTQ, QARepVGG under one.
  speed        float vs INT8 (u8 and s8 activations) latency of architectures at given sizes.
  ultralytics  our exported yolov8n ONNX vs Ultralytics' own export of the same architecture (needs the
               `ultralytics` package), timed interleaved in one process; the target is a ratio <= 1.05.

    .venv/bin/python benchmarks/quantization.py qarepvgg --data runs/data/synth300-256 --imgsz 256 \\
        --epochs 12 --out runs/bench/quantization
    .venv/bin/python benchmarks/quantization.py speed --archs yolov8n --sizes 320,640 --out runs/bench/quantization
    .venv/bin/python benchmarks/quantization.py ultralytics --sizes 320,640 --out runs/bench/quantization
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasearch.app.quantize import QuantizeOptions, measure_latencies, run_quantize
from nasearch.nn.inspect import count_params, fused_copy, randomize_bn
from nasearch.onnxio.export import export_detector
from nasearch.onnxio.qdq import quantize_qdq
from nasearch.onnxio.spec import int8_spec
from nasearch.space import Architecture, build_model, load_arch
from nasearch.train.trainer import LAST, TrainConfig, Trainer, prepare_run, resume_run

VARIANTS = ("repvgg", "qarepvgg")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def write(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    log(f"wrote {path}")


# -- QARepVGG vs RepVGG -----------------------------------------------------------------------------------
def nano_nas(block: str, nc: int, imgsz: int) -> Architecture:
    """A small YOLO-NAS-style detector whose reparameterizable blocks are all `block` (stem, stages, up path)."""
    stages = [
        {"type": "yolonas_stage", "out": out, "blocks": n, "hidden": hidden, "block": block}
        for out, n, hidden in ((32, 1, 16), (64, 2, 32), (128, 2, 48), (256, 1, 64))
    ]
    return Architecture.from_dict(
        {
            "name": f"nas-nano-{block}",
            "nc": nc,
            "imgsz": imgsz,
            "reg_max": 16,
            "act": "relu",
            "backbone": {
                "stem": {"type": "repvgg_stem", "out": 16, "variant": block},
                "stages": stages,
                "context": {"type": "yolonas_spp", "out": 256, "hidden": 128},
            },
            "neck": {
                "type": "yolonas_pan",
                "up1": {"out": 64, "blocks": 1, "hidden": 32, "block": block},
                "up2": {"out": 32, "blocks": 1, "hidden": 16, "block": block},
                "down1": {"out": 64, "blocks": 1, "hidden": 32},
                "down2": {"out": 128, "blocks": 1, "hidden": 32},
            },
            "head": {"type": "yolonas_head", "width_mult": 0.25},
        },
        f"<benchmark {block}>",
    )


def weight_outliers(model: torch.nn.Module) -> dict[str, float]:
    """How far the fused weights reach beyond their bulk, per output channel: max|w| / mean|w|.

    Per-channel INT8 spends its 127 steps on max|w|; a channel whose maximum is far above its typical
    weight keeps few steps for the rest. Reported over every channel of every conv of the deploy form.
    """
    ratios = []
    for m in fused_copy(model).modules():
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight.detach().flatten(1).abs()
            ratios.append((w.amax(1) / w.mean(1).clamp_min(1e-12)).numpy())
    r = np.concatenate(ratios)
    return {
        "median": round(float(np.median(r)), 3),
        "p99": round(float(np.percentile(r, 99)), 3),
        "max": round(float(r.max()), 3),
    }


def train_variant(arch: Architecture, data: str, out: Path, config: TrainConfig) -> Path:
    """Train (or finish training) one variant; returns its last.pt (EMA weights)."""
    last = out / LAST
    if last.exists():
        state = torch.load(last, weights_only=True, map_location="cpu")
        if int(state["epoch"]) + 1 >= int(state["train_args"]["epochs"]):
            log(f"{arch.name}: already trained ({last})")
            return last
        trainer: Trainer = resume_run(last, data, {"threads": config.threads, "workers": config.workers})
    else:
        trainer = prepare_run(arch, data, out, config)
    trainer.fit()
    return last


def qarepvgg(args: argparse.Namespace) -> dict[str, Any]:
    from nasearch.data import load_split

    nc = load_split(args.data, "val").nc
    config = TrainConfig(
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        workers=args.workers,
        threads=args.threads,
        close_mosaic=max(1, args.epochs // 4),
        seed=args.seed,
        optimizer=args.optimizer,
        lr0=args.lr0,
        nbs=args.nbs or args.batch,
    )
    rows = []
    variants = [v for v in args.variants.split(",") if v]
    for block in variants:
        arch = nano_nas(block, nc, args.imgsz)
        ckpt = train_variant(arch, args.data, args.out / block, config)
        model = build_model(arch)
        model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
        row: dict[str, Any] = {
            "variant": block,
            "params": count_params(model),
            "checkpoint": str(ckpt),
            "weight_outliers": weight_outliers(model.eval()),
        }
        for target in ("cpu", "tensorrt"):
            opts = QuantizeOptions(
                mode="ptq",
                data=args.data,
                out=args.out / block / f"ptq-{target}",
                target=target,
                method=args.calibration,
                calib_images=args.calib_images,
                threads=args.threads,
            )
            doc = run_quantize(ckpt, opts, log)
            row[target] = {
                k: doc[k]
                for k in (
                    "map_float",
                    "map_int8",
                    "drop",
                    "latency_float_ms",
                    "latency_int8_ms",
                    "speedup",
                    "activations",
                )
            }
        rows.append(row)
    result = {
        "part": "qarepvgg",
        "data": args.data,
        "imgsz": args.imgsz,
        "epochs": args.epochs,
        "batch": args.batch,
        "optimizer": args.optimizer,
        "lr0": args.lr0,
        "nbs": args.nbs or args.batch,
        "calibration": args.calibration,
        "calib_images": args.calib_images,
        "threads": args.threads,
        "load_average": load_average(),
        "latency_measured": True,
        "rows": rows,
    }
    write(result, args.out / f"qarepvgg-{'-'.join(variants)}.json")
    print(
        "| variant | float mAP50-95 | INT8 mAP (u8) | drop | INT8 mAP (s8) | drop | weight max/mean p99 |"
        " float ms | u8 ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, t = r["cpu"], r["tensorrt"]
        print(
            f"| {r['variant']} | {c['map_float']:.2f} | {c['map_int8']:.2f} | {c['drop']:.2f} | {t['map_int8']:.2f} "
            f"| {t['drop']:.2f} | {r['weight_outliers']['p99']:.1f} | {c['latency_float_ms']:.2f} "
            f"| {c['latency_int8_ms']:.2f} | {c['speedup']:.2f}x |"
        )
    return result


# -- INT8 speed-up ----------------------------------------------------------------------------------------
def speed(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for name in args.archs.split(","):
        arch = load_arch(name)
        torch.manual_seed(args.seed)
        model = randomize_bn(build_model(arch)).eval()  # realistic activation ranges without training
        for size in [int(s) for s in args.sizes.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                f = export_detector(model, Path(tmp) / "f.onnx", size)
                rng = np.random.default_rng(0)
                calib = [rng.random((1, 3, size, size), dtype=np.float32) for _ in range(8)]
                u8 = quantize_qdq(f, Path(tmp) / "u8.onnx", calib, int8_spec("cpu"))
                s8 = quantize_qdq(f, Path(tmp) / "s8.onnx", calib, int8_spec("tensorrt"))
                t = measure_latencies([f, u8, s8], args.threads, args.rounds)
            fp, a, b = (x["median_ms"] for x in t)
            rows.append(
                {
                    "arch": arch.name,
                    "imgsz": size,
                    "float_ms": round(fp, 3),
                    "int8_u8_ms": round(a, 3),
                    "int8_s8_ms": round(b, 3),
                    "speedup_u8": round(fp / a, 3),
                    "speedup_s8": round(fp / b, 3),
                }
            )
            log(
                f"{arch.name} {size}px: float {fp:.2f} ms, INT8 u8 {a:.2f} ms (x{fp / a:.2f}), "
                f"s8 {b:.2f} ms (x{fp / b:.2f}) -- measured"
            )
    result = {
        "part": "speed",
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average": load_average(),
        "latency_measured": True,
        "rows": rows,
    }
    write(result, args.out / "speed.json")
    return result


# -- against Ultralytics' export ----------------------------------------------------------------------------
def ultralytics(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from ultralytics import YOLO
    except ImportError:
        log("ultralytics is not installed: .venv/bin/pip install ultralytics onnxslim")
        raise SystemExit(2) from None
    rows = []
    work = args.out / "ultralytics"
    work.mkdir(parents=True, exist_ok=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        torch.manual_seed(args.seed)
        ours = export_detector(build_model(load_arch("yolov8n")), work / f"nasearch_yolov8n_{size}.onnx", size)
        cwd = Path.cwd()
        os.chdir(work)  # Ultralytics writes its export next to the model file (here: the YAML name)
        try:
            theirs = Path(
                YOLO("yolov8n.yaml").export(
                    format="onnx", imgsz=size, opset=17, simplify=args.simplify, dynamic=False, verbose=False
                )
            )
        finally:
            os.chdir(cwd)
        theirs = theirs if theirs.is_absolute() else work / theirs
        target = work / f"ultralytics_yolov8n_{size}.onnx"
        os.replace(theirs, target)
        t = measure_latencies([ours, target], args.threads, args.rounds)
        a, b = t[0]["median_ms"], t[1]["median_ms"]
        rows.append(
            {
                "imgsz": size,
                "nasearch_ms": round(a, 3),
                "ultralytics_ms": round(b, 3),
                "ratio": round(a / b, 4),
                "nasearch_rounds": t[0]["rounds"],
                "ultralytics_rounds": t[1]["rounds"],
                "target_ratio": 1.05,
                "met": a / b <= 1.05,
            }
        )
        log(f"yolov8n {size}px: nasearch {a:.2f} ms vs Ultralytics {b:.2f} ms -> ratio {a / b:.3f} (measured)")
    import ultralytics as ul

    result = {
        "part": "ultralytics",
        "ultralytics": ul.__version__,
        "simplify": args.simplify,
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average": load_average(),
        "latency_measured": True,
        "rows": rows,
    }
    write(result, args.out / "ultralytics.json")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    q = sub.add_parser("qarepvgg", help="RepVGG vs QARepVGG: train both, PTQ drops, speed-up")
    q.add_argument("--data", required=True)
    q.add_argument("--imgsz", type=int, default=256)
    q.add_argument("--epochs", type=int, default=12)
    q.add_argument("--batch", type=int, default=16)
    q.add_argument("--workers", type=int, default=1)
    q.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    q.add_argument("--lr0", type=float, default=None, help="peak learning rate (default: the trainer's)")
    q.add_argument("--nbs", type=int, default=None, help="nominal batch size (default: --batch, no accumulation)")
    q.add_argument("--calibration", default="minmax")
    q.add_argument("--calib-images", type=int, default=64)
    q.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: repvgg, qarepvgg")
    s = sub.add_parser("speed", help="float vs INT8 latency")
    s.add_argument("--archs", default="yolov8n")
    s.add_argument("--sizes", default="320,640")
    u = sub.add_parser("ultralytics", help="our yolov8n ONNX vs Ultralytics' export")
    u.add_argument("--sizes", default="320,640")
    u.add_argument("--simplify", action="store_true", help="let Ultralytics simplify its graph (onnxslim)")
    for p in (q, s, u):
        p.add_argument("--out", type=Path, default=Path("runs/bench/quantization"))
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--rounds", type=int, default=5)
        p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    {"qarepvgg": qarepvgg, "speed": speed, "ultralytics": ultralytics}[args.part](args)
    log(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
