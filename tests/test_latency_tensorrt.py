"""The TensorRT backend without a GPU: builder flags, engine cache keys and caching, the no-GPU message.
A GPU-only end-to-end test is marked `gpu` and skips elsewhere."""

from __future__ import annotations

import types

import pytest

from nasearch.errors import InputError
from nasearch.latency import tensorrt_backend as trtb


class FakeConfig:
    def __init__(self) -> None:
        self.flags: list[str] = []
        self.pools: dict[str, int] = {}

    def set_flag(self, flag: str) -> None:
        self.flags.append(flag)

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pools[pool] = size


class FakeBuilder:
    built = 0

    def __init__(self, logger: object) -> None:
        self.config = FakeConfig()

    def create_builder_config(self) -> FakeConfig:
        return self.config

    def create_network(self, flags: int) -> str:
        assert flags == 0  # explicit batch is the only mode in TensorRT 10
        return "network"

    def build_serialized_network(self, network: str, config: FakeConfig) -> bytes:
        FakeBuilder.built += 1
        return ("engine:" + ",".join(config.flags)).encode()


class FakeParser:
    def __init__(self, network: str, logger: object) -> None:
        self.num_errors = 0

    def parse(self, data: bytes) -> bool:
        return data.startswith(b"onnx")


def fake_trt(with_int8: bool = True) -> types.SimpleNamespace:
    flags = {"FP16": "FP16", **({"INT8": "INT8"} if with_int8 else {})}
    logger = types.SimpleNamespace(WARNING=2)
    return types.SimpleNamespace(
        __version__="10.3.0",
        BuilderFlag=types.SimpleNamespace(**flags),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Builder=FakeBuilder,
        OnnxParser=FakeParser,
        _logger=logger,
    )


@pytest.mark.parametrize(("precision", "flags"), [("fp32", []), ("fp16", ["FP16"]), ("int8", ["INT8", "FP16"])])
def test_builder_flags_per_precision(precision, flags):
    trt = fake_trt()
    config = trtb.configure(FakeBuilder(None), trt, precision, workspace=1 << 28)
    assert config.flags == flags
    assert config.pools == {"WORKSPACE": 1 << 28}


def test_int8_relies_on_qdq_when_the_flag_no_longer_exists():
    config = trtb.configure(FakeBuilder(None), fake_trt(with_int8=False), "int8")
    assert config.flags == ["FP16"]


def test_the_cache_key_changes_with_every_input():
    base = dict(
        onnx_sha256="a" * 64,
        trt_version="10.3.0",
        gpu_name="Tesla T4",
        precision="fp16",
        batch=1,
        input_shapes=[[1, 3, 640, 640]],
    )
    key = trtb.engine_cache_key(**base)
    assert key == trtb.engine_cache_key(**base)
    changes = {
        "onnx_sha256": "b" * 64,
        "trt_version": "10.4.0",
        "gpu_name": "NVIDIA A10",
        "precision": "int8",
        "batch": 8,
        "input_shapes": [[1, 3, 320, 320]],
    }
    keys = {trtb.engine_cache_key(**{**base, name: value}) for name, value in changes.items()}
    assert len(keys) == len(changes) and key not in keys


def test_engines_are_built_once_then_read_from_the_cache(tmp_path):
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"onnx model bytes")
    trt = fake_trt()
    FakeBuilder.built = 0
    key = trtb.engine_cache_key(trtb.file_sha256(onnx_path), "10.3.0", "Tesla T4", "int8", 1, [[1, 3, 64, 64]])
    first = trtb.cached_engine(onnx_path, key, trt, "int8", tmp_path / "cache")
    second = trtb.cached_engine(onnx_path, key, trt, "int8", tmp_path / "cache")
    assert first == second == b"engine:INT8,FP16"
    assert FakeBuilder.built == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{key}.engine"]


def test_a_parse_failure_names_the_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="could not parse"):
        trtb.build_serialized(bad, fake_trt(), "fp16")


def test_without_a_gpu_the_backend_fails_at_once_naming_the_alternatives(monkeypatch):
    monkeypatch.setattr(trtb, "gpu_status", lambda: (False, "no CUDA GPU is visible"))
    with pytest.raises(InputError) as err:
        trtb.TensorRTBackend("fp16")
    line = err.value.line()
    assert "no CUDA GPU" in line and "onnxruntime" in line and "t4-tensorrt" in line


def test_gpu_status_explains_what_is_missing_here():
    ok, reason = trtb.gpu_status()
    if ok:
        pytest.skip("this machine has TensorRT and a GPU")
    assert reason and ("tensorrt" in reason or "pycuda" in reason or "CUDA" in reason or "GPU" in reason)


@pytest.mark.gpu
def test_tensorrt_measures_a_small_model_on_a_gpu():
    ok, reason = trtb.gpu_status()
    if not ok:
        pytest.skip(f"needs an NVIDIA GPU with TensorRT >= 10: {reason}")
    import torch
    from torch import nn

    backend = trtb.TensorRTBackend("fp16")
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1)).eval()
    timing = backend.time_module(model, [torch.rand(1, 3, 128, 128)], ["x"], ["y"])
    assert timing.runs >= trtb.MIN_ITERATIONS and 0 < timing.p10_ms <= timing.median_ms <= timing.p90_ms
