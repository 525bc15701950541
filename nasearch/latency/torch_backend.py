"""PyTorch eager backend: the fused model run directly; CUDA events on a GPU, wall clock on a CPU."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from nasearch.latency.backend import Backend
from nasearch.latency.fingerprint import Fingerprint, cpu_name
from nasearch.latency.stats import Timing, measure, timer


def cuda_step(fn: Callable[[], object]) -> Callable[[], float]:
    """A step timed by CUDA events around `fn` (milliseconds of GPU time)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def step() -> float:
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return step


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, *args: Any, device: str | None = None, **kwargs: Any) -> None:
        """Arguments as `Backend`'s; `device` is a torch device (default: the GPU if there is one)."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        super().__init__(*args, **kwargs)

    def precision_limit(self) -> str | None:
        if self.precision == "int8":
            return "fp32 or fp16 for the torch backend (int8: --backend onnxruntime or tensorrt)"
        if self.precision == "fp16" and self.device.type != "cuda":
            return "fp32 for the torch backend on a CPU (fp16 needs a GPU)"
        return None

    def single_thread_cpu(self) -> bool:
        return self.threads == 1 and self.device.type == "cpu"

    def fingerprint(self) -> Fingerprint:
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            return self._fingerprint(torch.__version__, name, "cuda", "cuda-events", {"cuda": str(torch.version.cuda)})
        return self._fingerprint(torch.__version__, cpu_name(), self.device.type, self.clock)

    def time_module(
        self,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        input_names: Sequence[str],
        output_names: Sequence[str],
    ) -> Timing:
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        if self.device.type != "cpu" or dtype != torch.float32:
            module = copy.deepcopy(module)  # converted below; the caller's module stays as it was
        module = module.to(self.device, dtype).eval()
        xs = [t.to(self.device, dtype if t.is_floating_point() else t.dtype) for t in inputs]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                run = lambda: module(*xs)  # noqa: E731
                step = cuda_step(run) if self.device.type == "cuda" else timer(self.clock)(run)
                return measure(step, self.policy)
        finally:
            torch.set_num_threads(previous)
