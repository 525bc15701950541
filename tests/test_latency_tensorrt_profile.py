"""`nasearch latency profile --backend tensorrt` without a GPU: the `tensorrt` and `pycuda` modules are
replaced at their import boundary by stand-ins that parse the real ONNX, record the builder flags in the
"engine" and report a fixed time per engine (derived from its size: no figure here is a measurement).
Checked: engines carry the flags the T4 model assumes, the database holds TensorRT rows, and
`latency predict --db` and the search read them on a machine without a GPU."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.latency.tensorrt_backend import builder_flag_names
from tests.fixtures import micro_space

runner = CliRunner()

SPACE = micro_space("trt_one")


def _fake_trt() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            pass

    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []

        def set_flag(self, flag: str) -> None:
            self.flags.append(flag)

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            pass

    class Network:
        io: list = []

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_builder_config(self) -> Config:
            return Config()

        def create_network(self, flags: int) -> Network:
            assert flags == 0  # explicit batch, the only mode of TensorRT 10
            return Network()

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            return json.dumps({"flags": config.flags, "io": network.io, "size": network.size}).encode()

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network

        def parse(self, data: bytes) -> bool:
            graph = onnx.load_from_string(data).graph
            shape = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
            self.network.io = [[v.name, "INPUT", shape(v)] for v in graph.input] + [
                [v.name, "OUTPUT", shape(v)] for v in graph.output
            ]
            self.network.size = len(data)
            return True

    class Engine:
        def __init__(self, doc: dict) -> None:
            self.io, self.ms = doc["io"], 0.01 + doc["size"] / 1e7
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return self.io[i][0]

        def get_tensor_dtype(self, name: str) -> str:
            return "float32"

        def get_tensor_shape(self, name: str) -> list[int]:
            return next(s for n, _, s in self.io if n == name)

        def get_tensor_mode(self, name: str) -> str:
            return next(m for n, m, _ in self.io if n == name)

        def create_execution_context(self) -> types.SimpleNamespace:
            return types.SimpleNamespace(
                set_tensor_address=lambda name, ptr: None, execute_async_v3=lambda handle: _CLOCK.update(ms=self.ms)
            )

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            return Engine(json.loads(data))

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.nptype = lambda dtype: np.float32
    return trt


_CLOCK: dict[str, float] = {"ms": 0.0}


def _fake_cuda() -> tuple[types.ModuleType, types.ModuleType]:
    pycuda = types.ModuleType("pycuda")
    cuda = types.ModuleType("pycuda.driver")

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int) -> None:
            pass

        def name(self) -> str:
            return "Tesla T4"

        def make_context(self) -> types.SimpleNamespace:
            return types.SimpleNamespace(pop=lambda: None)

    class Event:
        def record(self, stream: object) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def time_till(self, other: Event) -> float:
            return _CLOCK["ms"]

    cuda.init = lambda: None
    cuda.Device, cuda.Event = Device, Event
    cuda.Stream = lambda: types.SimpleNamespace(handle=0)
    cuda.mem_alloc = lambda n: 1
    cuda.memcpy_htod = lambda dev, host: None
    cuda.get_version = lambda: (12, 4, 0)
    cuda.get_driver_version = lambda: 12040
    pycuda.driver = cuda
    return pycuda, cuda


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    pycuda, cuda = _fake_cuda()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_trt())
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setenv("NASEARCH_TRT_CACHE", str(tmp_path / "engines"))
    return tmp_path / "engines"


@pytest.mark.slow
def test_profile_on_a_tensorrt_gpu_then_predict_and_search_without_one(fake_gpu, tmp_path, monkeypatch):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    db = str(tmp_path / "t4.db")
    result = runner.invoke(
        app,
        ["latency", "profile", str(space), "--backend", "tensorrt", "--db", db, "--networks", "1", "--quick", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["signatures"] == report["measured_now"] > 0 and report["coverage"] == 1.0

    # every engine was built with the flags the T4 model assumes (one definition, recorded in its file)
    engines = list(fake_gpu.glob("*.engine"))
    assert len(engines) >= report["signatures"]
    assert {tuple(json.loads(p.read_bytes())["flags"]) for p in engines} == {builder_flag_names("fp16")}
    t4 = json.loads((Path(__file__).parents[1] / "latency_db" / "t4_model.json").read_text())
    assert t4["builder_flags"]["fp16"] == list(builder_flag_names("fp16")) == ["FP16"]

    from nasearch.latency.db import LatencyDB

    with LatencyDB(db, create=False) as database:
        [(fp, n_units, n_networks)] = database.fingerprints()
        assert (fp.backend, fp.backend_version, fp.device, fp.precision, fp.batch) == (
            "tensorrt",
            "10.3.0",
            "Tesla T4",
            "fp16",
            1,
        )
        assert n_units == report["signatures"] and n_networks == 1
        rows = database.units(fp.id).values()
        assert all(r.median_ms > 0 and r.p10_ms <= r.median_ms <= r.p90_ms for r in rows)

    # the GPU is gone: predictions and the search read the stored TensorRT rows
    for name in ("tensorrt", "pycuda", "pycuda.driver"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails as on a CPU machine
    predicted = runner.invoke(app, ["latency", "predict", str(space), "--db", db, "--backend", "tensorrt", "--json"])
    assert predicted.exit_code == 0, predicted.output
    doc = json.loads(predicted.stdout)
    assert doc["measured"] is False and doc["precision"] == "fp16" and doc["target"].startswith("tensorrt:")
    assert doc["units_measured_now"] == doc["units_estimated"] == 0

    from nasearch.search.experiment import LatencySpec
    from nasearch.search.objectives import LatencyEvaluator
    from nasearch.space import load_arch

    spec = LatencySpec(source="database", backend="tensorrt", precision="fp16", db=db)
    lat = LatencyEvaluator(spec, 64, Path(db)).screen(load_arch(str(space)), None)
    assert lat.measured is False and lat.ms == pytest.approx(doc["predicted_ms"], rel=1e-6)
