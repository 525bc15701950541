"""What every measuring backend offers: a fingerprint and the timing of a module on given inputs.

Whole networks and units go through the same `time_module`, with the same session settings, so
that unit latencies add up to whole-network latencies as closely as the backend allows.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasearch.errors import OPTION, InputError
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.stats import CLOCKS, Timing, TimingPolicy
from nasearch.latency.units import Unit
from nasearch.onnxio.export import DECODED_OUTPUTS, export_module
from nasearch.onnxio.spec import Int8Spec
from nasearch.validation import check_positive

BACKENDS = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")


class Backend(ABC):
    name: str = ""
    default_precision: str = "fp32"

    def __init__(
        self,
        precision: str | None = None,
        batch: int = 1,
        threads: int = 1,
        policy: TimingPolicy | None = None,
        clock: str = "auto",
    ) -> None:
        precision = precision or self.default_precision
        if precision not in PRECISIONS:
            raise InputError(OPTION, "precision", " or ".join(PRECISIONS), repr(precision))
        check_positive(batch, "batch")
        check_positive(threads, "threads")
        self.precision, self.batch, self.threads = precision, batch, threads
        self.policy = policy or TimingPolicy()
        self.clock = self._resolve_clock(clock)
        unsupported = self.precision_limit()
        if unsupported:
            raise InputError(OPTION, "precision", unsupported, precision)
        self.setup()

    def precision_limit(self) -> str | None:
        """What to use instead when this backend, where it runs, cannot measure `self.precision`."""
        return None

    def setup(self) -> None:
        """Backend-specific preparation once the common settings are checked (a GPU context, say)."""
        return None

    def single_thread_cpu(self) -> bool:
        """Whether all the work of one run happens on the calling thread of a CPU (then the thread's CPU
        time is a valid latency clock)."""
        return False

    def _resolve_clock(self, clock: str) -> str:
        """`auto` is the thread-CPU clock where valid (one thread on a CPU), else the wall clock."""
        if clock == "auto":
            return "cpu" if self.single_thread_cpu() else "wall"
        if clock not in CLOCKS:
            raise InputError(OPTION, "clock", "auto, wall or cpu", repr(clock))
        if clock == "cpu" and not self.single_thread_cpu():
            raise InputError(OPTION, "clock", "wall or auto (the cpu clock needs --threads 1 on a CPU)", "cpu")
        return clock

    @abstractmethod
    def fingerprint(self) -> Fingerprint:
        """The device fingerprint this backend's figures belong to."""

    def _fingerprint(
        self, version: str, device: str, provider: str, clock: str, extra: dict[str, str] | None = None
    ) -> Fingerprint:
        """A fingerprint with the settings every backend shares (threads, precision, batch) filled in."""
        return Fingerprint(
            self.name, version, device, provider, self.threads, self.precision, self.batch, clock, extra or {}
        )

    @abstractmethod
    def time_module(
        self,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        input_names: Sequence[str],
        output_names: Sequence[str],
    ) -> Timing:
        """Time `module(*inputs)` (already in deploy form, eval mode) until the median is stable."""

    def measure_model(self, fused: nn.Module, imgsz: int) -> Timing:
        """Time a fused detector end to end (decoded outputs) at [batch, 3, imgsz, imgsz]."""
        x = torch.rand(self.batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
        fused.eval()
        return self.time_module(fused, [x], ["images"], list(DECODED_OUTPUTS))

    def measure_unit(self, unit: Unit) -> Timing:
        """Time one unit alone, on the inputs captured when it was traced."""
        inputs = unit.inputs
        if any(t.device.type == "meta" for t in inputs):
            raise ValueError(f"unit {unit.name} was traced on the meta device; trace with real=True to measure")
        names_in = [f"in{i}" for i in range(len(inputs))]
        names_out = [f"out{i}" for i in range(len(unit.description["outputs"]))]
        return self.time_module(unit.as_module().eval(), inputs, names_in, names_out)


class OnnxBackend(Backend):
    """A backend that runs the module exported to ONNX (QDQ-quantized for int8): ONNX Runtime, TensorRT.

    Both see the very same graph for a given module, so their figures differ only by the runtime.
    """

    int8: Int8Spec | None = None  # the quantization spec int8 measures, set by subclasses
    check_export = True

    def cast(self, module: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[nn.Module, list[torch.Tensor]]:
        """The module and inputs in the dtype the runtime is given (as they are by default)."""
        return module, list(inputs)

    @abstractmethod
    def time_onnx(self, path: Path, feeds: dict[str, np.ndarray]) -> Timing:
        """Time the ONNX graph at `path` on `feeds` (one array per graph input, in input order)."""

    def time_module(
        self,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        input_names: Sequence[str],
        output_names: Sequence[str],
    ) -> Timing:
        module, xs = self.cast(module, inputs)
        with tempfile.TemporaryDirectory(prefix=f"nasearch-{self.name}-") as tmp:
            path = export_module(module, xs, Path(tmp) / "m.onnx", input_names, output_names, check=self.check_export)
            feeds = {n: t.detach().cpu().numpy() for n, t in zip(input_names, xs, strict=True)}
            if self.int8 is not None:
                from nasearch.onnxio.qdq import perturbed_copies, quantize_qdq

                path = quantize_qdq(path, Path(tmp) / "m.int8.onnx", perturbed_copies(feeds), self.int8)
            return self.time_onnx(path, feeds)


def get_backend(
    name: str,
    precision: str = "fp32",
    batch: int = 1,
    threads: int = 1,
    policy: TimingPolicy | None = None,
    clock: str = "auto",
) -> Backend:
    """A backend by name; unknown names are input errors."""
    if name == "onnxruntime":
        from nasearch.latency.onnxrt import OnnxRuntimeBackend

        return OnnxRuntimeBackend(precision, batch, threads, policy, clock=clock)
    if name == "torch":
        from nasearch.latency.torch_backend import TorchBackend

        return TorchBackend(precision, batch, threads, policy, clock=clock)
    if name == "tensorrt":
        from nasearch.latency.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(precision, batch, threads, policy, clock=clock)
    raise InputError(OPTION, "backend", " | ".join(BACKENDS), repr(name))
