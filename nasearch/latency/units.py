"""Split a fused detector into measurable units, and give each unit a signature.

A unit is a piece of the deploy-form network that runs as one call: the stem, each backbone stage,
the context block, every outermost module the neck and the head call in their forward (whatever their
internal structure, e.g. a C2f, an Upsample, one head branch), and the box decoding. Units are found
generically by forward hooks, so new blocks need nothing here.

A signature hashes everything about a unit that can change its latency: its kind, the module tree
(class of every submodule, every scalar attribute such as channels, kernel, stride, groups, a residual
flag, the shapes and dtypes of parameters and buffers), and the shapes and dtypes of its inputs and
outputs. It is taken on the training form, which fixes the deploy form (fusing is deterministic), so
two units with one signature have identical deploy forms. Weight values are left out: they do not
change latency. Tracing on the `meta` device gives the same signatures as tracing real tensors, in
milliseconds and without memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils.flop_counter import FlopCounterMode

from nasearch.nn.common import fuse_model
from nasearch.nn.detector import Detector, decode
from nasearch.onnxio.export import torch_threads
from nasearch.space import Architecture, build_model

SCALARS = (bool, int, float, str, type(None))
BACKBONE_KINDS = ("stem", "stage", "context")


@dataclass
class Unit:
    """One measurable call: where it is, what it is, its signature, and (after a real trace) its inputs."""

    name: str
    kind: str
    block_type: str
    signature: str
    description: dict[str, Any]
    module: nn.Module
    leaves: list[Any] = field(repr=False)
    spec: Any = field(repr=False)
    features: dict[str, float] = field(default_factory=dict)

    @property
    def inputs(self) -> list[torch.Tensor]:
        return [leaf for leaf in self.leaves if isinstance(leaf, torch.Tensor)]

    def as_module(self) -> UnitModule:
        """A module taking the unit's input tensors positionally and returning its outputs as a tuple."""
        return UnitModule(self.module, self.leaves, self.spec)


class UnitModule(nn.Module):
    """Replays one captured call with new tensors in place of the captured ones."""

    def __init__(self, module: nn.Module, leaves: list[Any], spec: Any) -> None:
        super().__init__()
        self.module = module
        self.template = [None if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
        self.slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        self.spec = spec

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = list(self.template)
        for slot, tensor in zip(self.slots, tensors, strict=True):
            leaves[slot] = tensor
        args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        out = self.module(*args, **kwargs)
        return tuple(t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))


class DecodeUnit(nn.Module):
    """The detector's box decoding (DFL expectation, anchors, sigmoid) as a module of its own."""

    def __init__(self, bins: int, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.bins = bins
        self.strides = tuple(strides)

    def forward(self, raw: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(raw, self.bins, self.strides)


def _scalar_attrs(module: nn.Module) -> dict[str, Any]:
    out = {}
    for key, value in sorted(vars(module).items()):
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, SCALARS) or (
            isinstance(value, tuple | list) and all(isinstance(v, SCALARS) for v in value)
        ):
            out[key] = list(value) if isinstance(value, tuple | list) else value
    return out


def describe_module(module: nn.Module) -> list[dict[str, Any]]:
    """Every submodule's class, scalar attributes, and parameter/buffer shapes and dtypes."""
    rows = []
    for path, m in module.named_modules():
        rows.append(
            {
                "path": path,
                "class": f"{type(m).__module__}.{type(m).__qualname__}",
                "attrs": _scalar_attrs(m),
                "params": [[n, list(p.shape), str(p.dtype)] for n, p in m.named_parameters(recurse=False)],
                "buffers": [
                    [n, list(b.shape), str(b.dtype)] for n, b in m.named_buffers(recurse=False) if b is not None
                ],
            }
        )
    return rows


def _shapes(obj: Any) -> list[list[Any]]:
    return [[list(t.shape), str(t.dtype)] for t in pytree.tree_leaves(obj) if isinstance(t, torch.Tensor)]


def signature_of(description: dict[str, Any]) -> str:
    canon = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


@dataclass
class _Call:
    name: str
    kind: str
    block_type: str
    module: nn.Module
    leaves: list[Any]
    spec: Any
    outputs: list[list[Any]] = field(default_factory=list)
    flops: float = 0.0


class _Tracer:
    """Forward hooks that record the outermost calls below each root (or the root itself)."""

    def __init__(
        self, roots: list[tuple[str, str, str, nn.Module, bool]], keep_values: bool, counter: FlopCounterMode
    ) -> None:
        self.counter = counter
        self.calls: list[_Call] = []
        self.keep_values = keep_values
        self.handles: list[Any] = []
        self.stack: list[tuple[nn.Module, _Call | None]] = []
        self.counts: dict[str, int] = {}
        for name, kind, block_type, root, descend in roots:
            members = list(root.named_modules()) if descend else [("", root)]
            for rel, m in members:
                full = f"{name}.{rel}" if rel else name
                self._hook(m, root, full, kind, block_type, descend)

    def _hook(self, m: nn.Module, root: nn.Module, full: str, kind: str, block_type: str, descend: bool) -> None:
        def pre(mod: nn.Module, args: tuple, kwargs: dict) -> None:
            outermost = (not self.stack) if mod is root else (len(self.stack) == 1 and self.stack[0][0] is root)
            call = None
            if outermost:
                leaves, spec = pytree.tree_flatten((args, kwargs))
                if self.keep_values:
                    leaves = [x.detach().clone() if isinstance(x, torch.Tensor) else x for x in leaves]
                count = self.counts.get(full, 0) + 1
                self.counts[full] = count
                label = full if count == 1 else f"{full}#{count}"
                sub_type = block_type if mod is root else f"{block_type}/{type(mod).__name__}"
                call = _Call(label, kind, sub_type, mod, leaves, spec)
                call.flops = -float(self.counter.get_total_flops())
                self.calls.append(call)
            self.stack.append((mod, call))

        def post(mod: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            _, call = self.stack.pop()
            if call is not None:
                call.outputs = _shapes(out)
                call.flops += float(self.counter.get_total_flops())

        self.handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        self.handles.append(m.register_forward_hook(post, with_kwargs=True))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _roots(model: Detector, types: dict[str, str]) -> list[tuple[str, str, str, nn.Module, bool]]:
    roots: list[tuple[str, str, str, nn.Module, bool]] = [("stem", "stem", types.get("stem", ""), model.stem, False)]
    for i, stage in enumerate(model.stages):
        roots.append((f"stages.{i}", "stage", types.get(f"stages.{i}", ""), stage, False))
    roots.append(("context", "context", types.get("context", ""), model.context, False))
    roots.append(("neck", "neck", types.get("neck", ""), model.neck, True))
    roots.append(("head", "head", types.get("head", ""), model.head, True))
    return roots


def _unit(call: _Call, extra: dict[str, Any] | None = None) -> Unit:
    """A finished unit; sub-units of the neck and head are keyed by their module, not their place."""
    inputs = _shapes(pytree.tree_unflatten(call.leaves, call.spec))
    desc: dict[str, Any] = {
        "kind": call.kind if call.kind in BACKBONE_KINDS or call.kind == "decode" else "sub",
        "module": describe_module(call.module),
        "inputs": inputs,
        "outputs": call.outputs,
    }
    if call.kind in BACKBONE_KINDS:
        desc["type"] = call.block_type
    if extra:
        desc.update(extra)
    return Unit(
        call.name,
        call.kind,
        call.block_type or type(call.module).__name__,
        signature_of(desc),
        desc,
        call.module,
        call.leaves,
        call.spec,
        unit_features(desc, call.flops),
    )


def unit_features(description: dict[str, Any], flops: float) -> dict[str, float]:
    """What the latency of a block roughly scales with (for estimating blocks never measured):
    GFLOPs of the training form, millions of input plus output elements, and the number of convs."""
    elems = sum(math.prod(shape) for shape, _ in [*description["inputs"], *description["outputs"]])
    convs = sum(1 for row in description["module"] if row["class"].endswith(".Conv2d"))
    return {"gflops": flops / 1e9, "io_melems": elems / 1e6, "convs": float(convs)}


def block_types(arch: Architecture) -> dict[str, str]:
    """Registered type names of the top-level blocks, by unit name."""
    bb = arch.data["backbone"]
    types = {
        "stem": bb["stem"]["type"],
        "context": bb["context"]["type"],
        "neck": arch.data["neck"]["type"],
        "head": arch.data["head"]["type"],
    }
    types.update({f"stages.{i}": s["type"] for i, s in enumerate(bb["stages"])})
    return types


class _MetaShortcuts(TorchFunctionMode):
    """On the meta device only shapes matter: batch norm (shape-preserving, but slow in its Python
    meta kernel) returns its input."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in (nn.functional.batch_norm, torch.batch_norm) and args and args[0].device.type == "meta":
            return args[0]
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def trace_units(
    model: Detector, x: torch.Tensor, types: dict[str, str] | None = None, keep_values: bool = False
) -> list[Unit]:
    """The units of a fused detector on input `x`, in execution order, the decoding last.
    With `keep_values`, each unit keeps a copy of its real inputs so it can be measured alone."""
    counter = FlopCounterMode(display=False)
    tracer = _Tracer(_roots(model, types or {}), keep_values, counter)
    try:
        with counter, _MetaShortcuts() if x.device.type == "meta" else contextlib.nullcontext():
            raw = model.forward_raw(x)
    finally:
        tracer.close()
    by_root: dict[int, list[_Call]] = {}
    for call in tracer.calls:
        by_root.setdefault(id(_root_of(call, model)), []).append(call)
    calls = []
    for call in tracer.calls:
        siblings = by_root[id(_root_of(call, model))]
        if call.module is _root_of(call, model) and len(siblings) > 1 and call.kind in ("neck", "head"):
            continue  # the neck or head itself is a unit only when it calls no module
        calls.append(call)
    units = [_unit(c) for c in calls]
    decoder = DecodeUnit(model.bins, model.strides)
    if keep_values:
        raw = [tuple(t.detach().clone() for t in pair) for pair in raw]
    leaves, spec = pytree.tree_flatten(((raw,), {}))
    with FlopCounterMode(display=False) as decode_counter:
        out = decoder(raw)
    call = _Call("decode", "decode", "decode", decoder, leaves, spec, _shapes(out))
    call.flops = float(decode_counter.get_total_flops())
    units.append(_unit(call))
    return units


def _root_of(call: _Call, model: Detector) -> nn.Module:
    head = call.name.split(".")[0].split("#")[0]
    if head == "stages":
        return model.stages[int(call.name.split(".")[1].split("#")[0])]
    return getattr(model, head)


def arch_units(
    arch: Architecture, imgsz: int, batch: int = 1, real: bool = False, seed: int = 0
) -> tuple[Detector, list[Unit]]:
    """Build `arch` and trace its units at [batch, 3, imgsz, imgsz].

    Signatures are taken from the training form, which determines the deploy form exactly (fusing is
    a deterministic function of the module tree), so no BN folding is needed to know them: on the
    `meta` device (`real=False`) this costs milliseconds and returns the unfused model. With
    `real=True` the model gets real weights, every unit keeps a copy of its real inputs, and the model
    is then fused in place, so each unit's module is its deploy form, ready to be measured."""
    device = torch.device("cpu" if real else "meta")
    if real:
        torch.manual_seed(seed)
    with device, torch_threads(1):
        model = build_model(arch)
        model.eval()
        if real:
            x = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(seed))
        else:
            x = torch.zeros(batch, 3, imgsz, imgsz, device=device)
        units = trace_units(model, x, block_types(arch), keep_values=real)
        if real:
            fuse_model(model)
    return model, units
