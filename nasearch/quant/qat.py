"""Quantization-aware training: fake-quantized fine-tuning of the deploy form, started from the PTQ ranges.

The fake quantization copies exactly what the QDQ graph of `nasearch.onnxio.qdq` computes, so what is
trained is what is exported: for every convolution ONNX Runtime quantized, its input and output
activations (per tensor, the PTQ scale and zero point as the starting range, learnt from there as in
LSQ) and its weights (per output channel, symmetric int8 in [-q, q], scale = max|w| / q, with q = 127, or 64 for the
reduced-range weights of the CPU spec on CPUs without VNNI, read from the graph). A
tensor feeding several convolutions has one shared quantizer, as it has one Q/DQ pair in the graph.

Export: the fine-tuned weights go back into plain convolutions, the float ONNX is exported again and
ONNX Runtime quantizes it with the learnt activation ranges as overrides, so the QDQ layout (and what
TensorRT and the CPU kernels see) is the same as plain PTQ's.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from nasearch.onnxio.export import export_detector
from nasearch.onnxio.qdq import quantize_qdq, quantized_nodes
from nasearch.train.engine import Engine, Recipe

WEIGHT_QMAX = 127  # ONNX Runtime's symmetric int8 weights use [-127, 127] ([-64, 64] with reduce_range)


@dataclass(frozen=True)
class QuantRange:
    """One quantized tensor of a QDQ graph: real = scale * (q - zero_point), q in [qmin, qmax]."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    @property
    def rmin(self) -> float:
        return (self.qmin - self.zero_point) * self.scale

    @property
    def rmax(self) -> float:
        return (self.qmax - self.zero_point) * self.scale


QTYPE_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-127, 127)}


def activation_ranges(qdq_onnx: str | Path) -> dict[str, QuantRange]:
    """Tensor name → its per-tensor range, for every tensor a QuantizeLinear reads in the QDQ graph.

    Signed activations are only written symmetric by `quantize_qdq` (TensorRT form), hence [-127, 127].
    """
    graph = onnx.load(str(qdq_onnx)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        scale, zp = inits.get(node.input[1]), inits.get(node.input[2])
        if scale is None or zp is None or scale.size != 1:
            continue
        qmin, qmax = QTYPE_RANGES.get(zp.dtype, (int(np.iinfo(zp.dtype).min), int(np.iinfo(zp.dtype).max)))
        out[node.input[0]] = QuantRange(float(scale.reshape(())), int(zp.reshape(())), qmin, qmax)
    return out


def _grad_scaled(p: torch.Tensor, factor: float) -> torch.Tensor:
    """`p` in the forward pass, gradient multiplied by `factor` in the backward pass (LSQ's step scale)."""
    return (p - p * factor).detach() + p * factor


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (x.round() - x).detach()


class ActFakeQuant(nn.Module):
    """Per-tensor fake quantization of activations with a learnable range [lo, hi] (or ±amax if signed)."""

    def __init__(self, start: QuantRange) -> None:
        super().__init__()
        self.qmin, self.qmax = start.qmin, start.qmax
        self.symmetric = start.qmin == -start.qmax
        if self.symmetric:
            self.amax = nn.Parameter(torch.tensor(float(start.rmax)))
        else:
            self.lo = nn.Parameter(torch.tensor(float(start.rmin)))
            self.hi = nn.Parameter(torch.tensor(float(start.rmax)))

    def scale_zero_point(self, grad_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point exactly as ONNX Runtime derives them from a range."""
        levels = self.qmax - self.qmin
        if self.symmetric:
            amax = _grad_scaled(self.amax, grad_factor).abs().clamp_min(1e-8)
            return amax / self.qmax, torch.zeros((), device=amax.device)
        lo = _grad_scaled(self.lo, grad_factor).clamp(max=0.0)
        hi = _grad_scaled(self.hi, grad_factor).clamp(min=0.0)
        scale = (hi - lo).clamp_min(1e-8) / levels
        zero_point = _round_ste(self.qmin - lo / scale).clamp(self.qmin, self.qmax)
        return scale, zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 1.0 / math.sqrt(max(x[0].numel(), 1) * self.qmax)
        scale, zero_point = self.scale_zero_point(factor)
        q = (_round_ste(x / scale) + zero_point).clamp(self.qmin, self.qmax)
        return (q - zero_point) * scale

    def range(self) -> tuple[float, float]:
        """(rmin, rmax) to hand to ONNX Runtime; it recomputes the same scale and zero point."""
        with torch.no_grad():
            if self.symmetric:
                a = float(self.amax.abs())
                return -a, a
            return min(float(self.lo), 0.0), max(float(self.hi), 0.0)


def fake_quant_weight(w: torch.Tensor, axis: int = 0, qmax: int = WEIGHT_QMAX) -> torch.Tensor:
    """Symmetric per-channel int8 fake quantization (scale from the current weights, no gradient)."""
    dims = [d for d in range(w.dim()) if d != axis]
    amax = w.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)
    scale = amax / qmax
    return _round_ste(w / scale).clamp(-qmax, qmax) * scale


class QuantConv(nn.Module):
    """A Conv2d / ConvTranspose2d with fake-quantized input, weights and output; `conv` is the original."""

    def __init__(
        self,
        conv: nn.Conv2d | nn.ConvTranspose2d,
        in_q: ActFakeQuant | None,
        out_q: ActFakeQuant | None,
        weight_qmax: int = WEIGHT_QMAX,
    ) -> None:
        super().__init__()
        self.weight_qmax = weight_qmax
        self.conv = conv
        self.in_q = in_q
        self.out_q = out_q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_q is not None:
            x = self.in_q(x)
        c = self.conv
        if isinstance(c, nn.ConvTranspose2d):
            w = fake_quant_weight(c.weight, axis=1, qmax=self.weight_qmax)
            y = F.conv_transpose2d(x, w, c.bias, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
        else:
            w = fake_quant_weight(c.weight, axis=0, qmax=self.weight_qmax)
            y = F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)
        return self.out_q(y) if self.out_q is not None else y


def _digest(array: np.ndarray) -> tuple[tuple[int, ...], str]:
    arr = np.ascontiguousarray(array, dtype=np.float32)
    return tuple(arr.shape), hashlib.sha1(arr.tobytes()).hexdigest()


def conv_modules_by_node(model: nn.Module, float_onnx: str | Path) -> dict[str, str]:
    """ONNX conv node name → module path, matched by identical weights (robust to exporter naming)."""
    graph = onnx.load(str(float_onnx)).graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    by_digest: dict[tuple[tuple[int, ...], str], list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            by_digest.setdefault(_digest(module.weight.detach().cpu().numpy()), []).append(name)
    out = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        source = node.input[1]
        while source not in inits and source in producers and producers[source].op_type == "Identity":
            source = producers[source].input[0]
        if source not in inits:
            continue
        paths = by_digest.get(_digest(numpy_helper.to_array(inits[source])))
        if paths and len(paths) == 1:
            out[node.name] = paths[0]
    return out


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)


@dataclass(frozen=True)
class QATPlan:
    """Which module each quantized conv node is, and the tensors its quantizers stand for."""

    modules: dict[str, str]  # conv node → module path
    inputs: dict[str, str]  # conv node → input tensor name
    outputs: dict[str, str]  # conv node → output tensor name


def weight_qmax(qdq_onnx: str | Path) -> int:
    """The largest |q| of the graph's int8 weights: 127, or 64 when written with reduce_range.

    Symmetric per-channel weights map each channel's max|w| to exactly ±qmax, so the maximum is qmax.
    """
    graph = onnx.load(str(qdq_onnx)).graph
    inits = {i.name: i for i in graph.initializer}
    peaks = [
        int(np.abs(numpy_helper.to_array(inits[n.input[0]]).astype(np.int32)).max())
        for n in graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
        and numpy_helper.to_array(inits[n.input[0]]).size
    ]
    peak = max(peaks, default=WEIGHT_QMAX)
    return 64 if peak <= 64 else WEIGHT_QMAX


def prepare_qat(fused: nn.Module, float_onnx: str | Path, qdq_onnx: str | Path) -> tuple[nn.Module, QATPlan]:
    """A copy of the deploy-form model whose quantized convs are `QuantConv`s started from the PTQ ranges."""
    model = copy.deepcopy(fused)
    graph = onnx.load(str(float_onnx)).graph
    nodes = {n.name: n for n in graph.node}
    ranges = activation_ranges(qdq_onnx)
    qmax = weight_qmax(qdq_onnx)
    quantized = {k for k, v in quantized_nodes(qdq_onnx).items() if v}
    mapping = {k: v for k, v in conv_modules_by_node(model, float_onnx).items() if k in quantized}
    shared: dict[str, ActFakeQuant] = {}

    def quantizer(tensor: str) -> ActFakeQuant | None:
        if tensor not in ranges:
            return None
        if tensor not in shared:
            shared[tensor] = ActFakeQuant(ranges[tensor])
        return shared[tensor]

    inputs, outputs = {}, {}
    for node_name, path in mapping.items():
        node = nodes[node_name]
        inputs[node_name], outputs[node_name] = node.input[0], node.output[0]
        conv = model.get_submodule(path)
        _set_module(model, path, QuantConv(conv, quantizer(node.input[0]), quantizer(node.output[0]), qmax))
    return model, QATPlan(mapping, inputs, outputs)


def strip_qat(model: nn.Module) -> nn.Module:
    """A copy with every QuantConv replaced by its (fine-tuned) plain convolution."""
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, QuantConv):
            _set_module(plain, name, module.conv)
    return plain


def learnt_ranges(tuned: nn.Module, plain: nn.Module, float_onnx: str | Path) -> dict[str, tuple[float, float]]:
    """Tensor name in `float_onnx` (the export of `plain`, the stripped `tuned`) → learnt (rmin, rmax).

    Convs are matched to the export by their weights, so the names are those of this very file.
    """
    graph = onnx.load(str(float_onnx)).graph
    nodes = {n.name: n for n in graph.node}
    out = {}
    for node_name, path in conv_modules_by_node(plain, float_onnx).items():
        module = tuned.get_submodule(path)
        if not isinstance(module, QuantConv):
            continue
        if module.in_q is not None:
            out[nodes[node_name].input[0]] = module.in_q.range()
        if module.out_q is not None:
            out[nodes[node_name].output[0]] = module.out_q.range()
    return out


def qat_recipe(lr: float, batch: int, total_iters: int) -> Recipe:
    """The QAT recipe of the training engine: SGD (momentum 0.9, no warm-up: the weights are trained
    already) with cosine decay from `lr` (about ten times the end of full training) to lr/100, the full
    recipe's weight decay, nominal batch and clipping, and an EMA whose ramp is a tenth of the run."""
    full = Recipe()
    accumulate = full.accumulate(batch)
    return replace(
        full,
        optimizer="sgd",
        lr0=lr,
        lrf=0.01,
        schedule="cosine",
        warmup_iters=0,
        momentum=0.9,
        warmup_momentum=0.9,
        warmup_bias_lr=lr,
        ema_decay=0.999,
        ema_tau=max(total_iters / accumulate / 10, 1.0),
        amp=False,
    )


def finetune(
    model: nn.Module,
    split: Any,
    imgsz: int,
    epochs: int,
    batch: int,
    lr: float,
    workers: int = 0,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Fine-tune a fake-quantized deploy-form model with the detection loss (`qat_recipe`); returns its EMA.

    No mosaic: the model is adapting to quantization noise, not learning new content.
    """
    from nasearch.data import make_loader
    from nasearch.train.loss import DetectionLoss

    torch.manual_seed(seed)
    loss_fn = DetectionLoss.for_model(model)
    loader = make_loader(split, imgsz, batch, augment=True, mosaic=False, workers=workers, seed=seed)
    total = epochs * len(loader)

    def loss(raw: Any, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total_loss, parts = loss_fn(raw, targets)
        return total_loss, torch.tensor([parts["box"], parts["cls"], parts["dfl"]])

    engine = Engine.create(model, qat_recipe(lr, batch, total), loss, batch, total, torch.device("cpu"))
    iteration = 0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        means, iteration = engine.run(loader, iteration)
        if log is not None:
            log(f"qat: epoch {epoch + 1}/{epochs}: " + " ".join(f"{k} {v:.4f}" for k, v in means.items()))
    assert engine.ema is not None
    return engine.ema.model.eval()


def run_qat(
    fused: nn.Module,
    float_onnx: Path,
    ptq_onnx: Path,
    out: Path,
    calib: list[np.ndarray],
    evaluate: Callable[[Path], float],
    opts: Any,
    imgsz: int,
    log: Callable[[str], None],
) -> tuple[float, dict[str, Any]]:
    """PTQ ranges → QAT fine-tuning → QDQ ONNX at `out`; returns (its mAP, details for the report)."""
    from nasearch.quant.calibration import calibration_split

    qmodel, plan = prepare_qat(fused, float_onnx, ptq_onnx)
    log(f"qat: {len(plan.modules)} fake-quantized convs, {opts.qat_epochs} epochs at lr {opts.qat_lr:g}")
    tuned = finetune(
        qmodel,
        calibration_split(opts.data, log),
        imgsz,
        opts.qat_epochs,
        opts.qat_batch,
        opts.qat_lr,
        opts.workers,
        opts.seed,
        log,
    )
    plain = strip_qat(tuned)
    tuned_float = export_detector(plain, out.with_name("model.qat-float.onnx"), imgsz, fused=True)
    quantize_qdq(tuned_float, out, calib, opts.ptq_config(), ranges=learnt_ranges(tuned, plain, tuned_float))
    return evaluate(out), {"qat_epochs": opts.qat_epochs, "qat_lr": opts.qat_lr, "qat_layers": len(plan.modules)}
