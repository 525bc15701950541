"""The operator graph of a fused detector, traced on the meta device (shapes only, no compute).

Every aten op the deploy form runs is recorded with its FLOPs and bytes, which is what a roofline
latency model needs. Tracing on `meta` costs milliseconds even for 640-px YOLOv8-X.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nasearch.nn.inspect import fused_copy
from nasearch.space import Architecture, build_model

# How TensorRT treats each aten op family, roughly: compute kernels, standalone memory kernels,
# pointwise ops it fuses into the producer (they still move bytes), concat (often elided), and free
# shape ops that are folded away.
COMPUTE = {"aten.convolution", "aten.mm", "aten.addmm", "aten.bmm"}
MEMORY = {
    "aten.max_pool2d_with_indices",
    "aten.max_pool2d",
    "aten.upsample_nearest2d",
    "aten.avg_pool2d",
    "aten._softmax",
    "aten.sum",
    "aten.mean",
    "aten.upsample_bilinear2d",
}
CONCAT = {"aten.cat"}
POINTWISE = {
    "aten.add",
    "aten.add_",
    "aten.mul",
    "aten.mul_",
    "aten.sub",
    "aten.div",
    "aten.sigmoid",
    "aten.relu",
    "aten.relu_",
    "aten.silu",
    "aten.silu_",
    "aten.hardswish",
    "aten.hardswish_",
    "aten.leaky_relu",
    "aten.leaky_relu_",
    "aten.gelu",
    "aten.clamp",
    "aten.exp",
}


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # compute | memory | concat | pointwise
    flops: float  # 2 × MACs
    weight_elems: int
    act_elems: int  # elements read and written (activations)
    out_shape: tuple[int, ...]
    channels_out: int
    layer: str = ""  # module path of a convolution ("stages.0.1.cv1.conv"), what hybrid INT8 names
    groups: int = 1  # of a convolution (depthwise when it equals the input channels)


def _numel(x: object) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _conv_op(args: tuple, out: torch.Tensor, layer: str) -> Op:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    groups = int(args[8]) if len(args) > 8 else 1
    if transposed:
        # every input pixel scatters a Cout/groups × k × k patch
        flops = 2.0 * x.numel() * w.shape[1] * math.prod(w.shape[2:])
        c_out = w.shape[1] * groups
    else:
        flops = 2.0 * out.numel() * (w.shape[1]) * math.prod(w.shape[2:])
        c_out = w.shape[0]
    return Op(
        "aten.convolution",
        "compute",
        flops,
        w.numel() + _numel(args[2]),
        x.numel() + out.numel(),
        tuple(out.shape),
        int(c_out),
        layer,
        groups,
    )


class _Tracer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.layer = ""  # set by a forward pre-hook on each convolution module

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket)
        first = out[0] if isinstance(out, tuple | list) else out
        if not isinstance(first, torch.Tensor):
            return out
        if name == "aten.convolution":
            self.ops.append(_conv_op(args, first, self.layer))
        elif name in COMPUTE:
            a, b = args[-2], args[-1]
            flops = 2.0 * first.numel() * a.shape[-1]
            self.ops.append(
                Op(
                    name,
                    "compute",
                    flops,
                    _numel(b),
                    _numel(a) + first.numel(),
                    tuple(first.shape),
                    int(first.shape[-1]),
                )
            )
        else:
            kind = (
                "memory" if name in MEMORY else "concat" if name in CONCAT else "pointwise" if name in POINTWISE else ""
            )
            if kind:
                reads = sum(_numel(a) for a in args if isinstance(a, torch.Tensor))
                reads += sum(_numel(t) for a in args if isinstance(a, list | tuple) for t in a)
                self.ops.append(
                    Op(
                        name,
                        kind,
                        0.0,
                        0,
                        reads + first.numel(),
                        tuple(first.shape),
                        int(first.shape[1]) if first.dim() > 1 else 1,
                    )
                )
        return out


def trace_ops(arch: Architecture, imgsz: int, batch: int = 1) -> list[Op]:
    """Ops of the fused deploy form at static shapes (decoded outputs, no NMS)."""
    with torch.device("meta"):
        model = fused_copy(build_model(arch))
    x = torch.zeros(batch, 3, imgsz, imgsz, device="meta")
    tracer = _Tracer()
    hooks = [
        module.register_forward_pre_hook(lambda _m, _a, name=name: setattr(tracer, "layer", name))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
    ]
    try:
        with tracer, torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return tracer.ops
