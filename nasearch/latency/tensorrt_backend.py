"""TensorRT backend (extra `nasearch[tensorrt]`): engines built from ONNX with the TensorRT >= 10 Python
API, FP16, or INT8 from an explicitly quantized (QDQ) ONNX; timed with CUDA events through pycuda
after warm-up, median of at least 200 iterations. Engines are cached, keyed by the ONNX content hash,
TensorRT version, GPU name, precision, batch and input shapes.

The builder configuration is a set of pure functions of a `trt` module object, so it is tested on
machines without a GPU with a stand-in module.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from nasearch.envpaths import env_path, user_cache
from nasearch.errors import OPTION, InputError
from nasearch.latency.backend import OnnxBackend
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.stats import Timing, measure
from nasearch.onnxio.spec import int8_spec

MIN_ITERATIONS = 200
WORKSPACE_BYTES = 2 << 30
CACHE_ENV = "NASEARCH_TRT_CACHE"
ALTERNATIVES = (
    "use --backend onnxruntime or --backend torch on this machine, or predict T4 TensorRT latency "
    "with `nasearch latency predict ARCH --target t4-tensorrt`"
)


def cache_dir() -> Path:
    return env_path(CACHE_ENV, user_cache("trt-engines"))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def engine_cache_key(
    onnx_sha256: str,
    trt_version: str,
    gpu_name: str,
    precision: str,
    batch: int,
    input_shapes: Sequence[Sequence[int]],
) -> str:
    """The engine cache key: every input that changes the built engine."""
    body = {
        "onnx": onnx_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "precision": precision,
        "batch": batch,
        "shapes": [list(s) for s in input_shapes],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def builder_flag_names(precision: str) -> tuple[str, ...]:
    """Builder flags per precision: FP16 sets FP16; INT8 (a QDQ graph) sets INT8 and FP16, so the layers
    left unquantized run in half precision rather than fp32."""
    return {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]


def configure(builder: Any, trt: ModuleType, precision: str, workspace: int = WORKSPACE_BYTES) -> Any:
    """A builder config with the workspace limit and the precision flags (flags a TensorRT version no
    longer has, such as INT8 after explicit quantization became the only INT8 path, are skipped)."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    for name in builder_flag_names(precision):
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is not None:
            config.set_flag(flag)
    return config


def build_serialized(onnx_path: str | Path, trt: ModuleType, precision: str, workspace: int = WORKSPACE_BYTES) -> bytes:
    """Parse the ONNX and build a serialized engine; parser errors are reported by node."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = configure(builder, trt, precision, workspace)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} ({precision})")
    return bytes(engine)


def cached_engine(onnx_path: Path, key: str, trt: ModuleType, precision: str, directory: Path | None = None) -> bytes:
    """The serialized engine for `key`, built once and stored atomically under the cache directory."""
    directory = directory or cache_dir()
    target = directory / f"{key}.engine"
    if target.exists():
        return target.read_bytes()
    data = build_serialized(onnx_path, trt, precision)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return data


def gpu_status() -> tuple[bool, str]:
    """Whether TensorRT can run here; the reason when not."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, "the tensorrt package is not installed (pip install 'nasearch[tensorrt]')"
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        return False, f"TensorRT {trt.__version__} is installed; >= 10 is required"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return False, "no CUDA GPU is visible"
    except ImportError:
        return False, "pycuda is not installed (pip install 'nasearch[tensorrt]')"
    except Exception as exc:  # the CUDA driver is missing or broken
        return False, f"CUDA is not usable ({type(exc).__name__}: {exc})"
    return True, "ok"


class TensorRTBackend(OnnxBackend):
    name = "tensorrt"
    default_precision = "fp16"

    def setup(self) -> None:
        ok, reason = gpu_status()
        if not ok:
            raise InputError(OPTION, "backend", f"tensorrt on a machine with an NVIDIA GPU; {ALTERNATIVES}", reason)
        self.policy = replace(
            self.policy,
            min_runs=max(self.policy.min_runs, MIN_ITERATIONS),
            max_runs=max(self.policy.max_runs, MIN_ITERATIONS),
        )
        self.int8 = int8_spec("tensorrt") if self.precision == "int8" else None
        import pycuda.driver as cuda
        import tensorrt as trt

        self.trt, self.cuda = trt, cuda
        self.context = cuda.Device(0).make_context()
        self.gpu = cuda.Device(0).name()

    def __del__(self) -> None:
        ctx = getattr(self, "context", None)
        if ctx is not None:
            ctx.pop()

    def fingerprint(self) -> Fingerprint:
        extra = {
            "cuda": ".".join(str(v) for v in self.cuda.get_version()),
            "driver": str(self.cuda.get_driver_version()),
        }
        if self.int8 is not None:
            extra["int8_spec"] = self.int8.name
        return self._fingerprint(str(self.trt.__version__), self.gpu, "cuda", "cuda-events", extra)

    def cast(self, module: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[nn.Module, list[torch.Tensor]]:
        """TensorRT takes an fp32 graph and lowers precision itself (builder flags)."""
        return module.float(), [t.float() for t in inputs]

    def time_onnx(self, path: Path, feeds: dict[str, np.ndarray]) -> Timing:
        shapes = [list(v.shape) for v in feeds.values()]
        key = engine_cache_key(
            file_sha256(path), str(self.trt.__version__), self.gpu, self.precision, self.batch, shapes
        )
        return self._time_engine(cached_engine(path, key, self.trt, self.precision), feeds)

    def _time_engine(self, engine_bytes: bytes, feeds: dict[str, np.ndarray]) -> Timing:
        trt, cuda = self.trt, self.cuda
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(engine_bytes)
        context = engine.create_execution_context()
        stream = cuda.Stream()
        buffers = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            shape = tuple(engine.get_tensor_shape(name))
            host = np.ascontiguousarray(feeds[name].astype(dtype)) if name in feeds else np.empty(shape, dtype)
            device = cuda.mem_alloc(max(host.nbytes, 1))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                cuda.memcpy_htod(device, host)
            context.set_tensor_address(name, int(device))
            buffers.append(device)
        start, end = cuda.Event(), cuda.Event()

        def step() -> float:
            start.record(stream)
            context.execute_async_v3(stream.handle)
            end.record(stream)
            end.synchronize()
            return float(start.time_till(end))

        return measure(step, self.policy)
