"""ONNX Runtime backend: export to ONNX, one session with a fixed thread count, warm-up, timed runs.

Settings are the same for whole networks and units: ORT_ENABLE_ALL graph optimisation, sequential
execution, `intra_op_num_threads` fixed (default 1: on a shared machine one thread gives the most
repeatable figures, and the fingerprint records it), denormals flushed to zero so timings never depend
on weight values, and outputs bound to preallocated buffers so each run times inference, not allocation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasearch.latency.backend import OnnxBackend
from nasearch.latency.fingerprint import Fingerprint, cpu_name
from nasearch.latency.stats import Timing, TimingPolicy, measure, timer
from nasearch.onnxio.spec import int8_spec

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def default_provider() -> str:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return next((p for p in PREFERRED_PROVIDERS if p in available), "CPUExecutionProvider")


def session_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


def make_session(onnx_path: str | Path, threads: int, provider: str):
    import onnxruntime as ort

    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    return ort.InferenceSession(str(onnx_path), session_options(threads), providers=providers)


def time_session(session, feeds: dict[str, np.ndarray], policy: TimingPolicy, clock: str = "wall") -> Timing:
    """Time `session` on `feeds` with IO binding and preallocated outputs."""
    import onnxruntime as ort

    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    keep = []
    for out in session.get_outputs():
        shape = [int(d) for d in out.shape]
        value = ort.OrtValue.ortvalue_from_shape_and_type(shape, NUMPY_TYPES.get(out.type, np.float32))
        keep.append(value)
        binding.bind_ortvalue_output(out.name, value)
    return measure(timer(clock)(lambda: session.run_with_iobinding(binding)), policy)


class OnnxRuntimeBackend(OnnxBackend):
    name = "onnxruntime"
    check_export = False

    def __init__(self, *args: Any, provider: str | None = None, **kwargs: Any) -> None:
        """Arguments as `Backend`'s; `provider` is the execution provider (default: a GPU one if present)."""
        self.provider = provider or default_provider()
        super().__init__(*args, **kwargs)

    def precision_limit(self) -> str | None:
        if self.precision == "fp16" and self.provider == "CPUExecutionProvider":
            return "fp32 or int8 for ONNX Runtime on a CPU (fp16 needs a GPU: --backend torch or tensorrt there)"
        return None

    def setup(self) -> None:
        self.int8 = int8_spec("cpu") if self.precision == "int8" else None

    def single_thread_cpu(self) -> bool:
        return self.threads == 1 and self.provider == "CPUExecutionProvider"

    def fingerprint(self) -> Fingerprint:
        import onnxruntime as ort

        device = cpu_name()
        if self.provider != "CPUExecutionProvider" and torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
        extra = {"int8_spec": self.int8.name} if self.int8 else {}
        return self._fingerprint(ort.__version__, device, self.provider, self.clock, extra)

    def cast(self, module: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[nn.Module, list[torch.Tensor]]:
        if self.precision == "fp16":
            return copy.deepcopy(module).half(), [t.half() for t in inputs]  # the caller's module stays as it was
        return module, list(inputs)

    def time_onnx(self, path: Path, feeds: dict[str, np.ndarray]) -> Timing:
        session = make_session(path, self.threads, self.provider)
        session_inputs = [i.name for i in session.get_inputs()]
        return time_session(session, {n: feeds[n] for n in session_inputs}, self.policy, self.clock)
