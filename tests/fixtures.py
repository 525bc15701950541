"""Shared by the latency and search tests: the small network and experiment texts they write into temporary
files, and a `nasearch search` child process, kept here once so that every test reads the same format."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import ROOT, SPACES

STAGE = "out: 16, blocks: 1"
MEASURED_ORT = "{source: measure, backend: onnxruntime, threads: 1}"  # measured, steady on a shared machine


def benchmark_script(name: str, module: str | None = None) -> ModuleType:
    """Import `benchmarks/<name>.py` as the module `module` (default `bench_<name>`), registered in
    `sys.modules` because its dataclasses look their module up."""
    spec = importlib.util.spec_from_file_location(module or f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def micro_neck_head() -> dict:
    """The micro network's v8 PAN and head (as `micro_space` writes them by default), as architecture keys."""
    return {
        "neck": {
            "type": "v8_pan",
            "up1": {"out": 16, "blocks": 1},
            "up2": {"out": 16, "blocks": 1},
            "down1": {"out": 16, "blocks": 1},
            "down2": {"out": 32, "blocks": 1},
        },
        "head": {"type": "v8_head", "box_width": 16, "cls_width": 16},
    }


def micro_backbone(stage1: str = STAGE, top: int = 32) -> str:
    """Four C2f stages and SPPF; `stage1` may hold choices, `top` is the width of the last stage and SPPF."""
    return f"""backbone:
  stem: {{type: conv_stem, out: 8}}
  stages:
    - {{type: c2f_stage, {STAGE}}}
    - {{type: c2f_stage, {stage1}}}
    - {{type: c2f_stage, out: 32, blocks: 1}}
    - {{type: c2f_stage, out: {top}, blocks: 1}}
  context: {{type: sppf, out: {top}}}
"""


def micro_space(name: str = "micro", stage1: str = STAGE, top: int = 32, neck: int = 16) -> str:
    """A v8 network at 64 px that exports and runs in well under a second: one architecture, or a space of
    a few when `stage1` holds choices. `neck` is the width of the PAN's first up and down blocks."""
    return f"""
name: {name}
nc: 4
imgsz: 64
reg_max: 8
act: silu
{micro_backbone(stage1, top)}neck:
  type: v8_pan
  up1: {{out: {neck}, blocks: 1}}
  up2: {{out: 16, blocks: 1}}
  down1: {{out: {neck}, blocks: 1}}
  down2: {{out: {top}, blocks: 1}}
head: {{type: v8_head, box_width: 16, cls_width: 16}}
"""


def tiny_experiment(
    name: str,
    trials: int,
    seed: int,
    latency: str = "{source: measure}",
    sampler: str | None = "random",
    eta: int | None = None,
    extra: str = "",
) -> str:
    """A search of the shipped tiny space that screens on FLOPs and has one rung (parameters): seconds a
    trial. `extra` is appended as it is (top-level keys such as storage, executor, suite)."""
    eta_line = f"    eta: {eta}\n" if eta is not None else ""
    sampler_line = f"sampler: {sampler}\n" if sampler else ""
    return f"""name: {name}
space: {SPACES / "tiny_space.yaml"}
imgsz: 64
objectives:
  latency: {latency}
  accuracy:
    screen: {{proxy: flops}}
    rungs: [{{proxy: params}}]
{eta_line}presets: false
{sampler_line}trials: {trials}
seed: {seed}
{extra}"""


def search_process(exp: Path, run_dir: Path, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """`nasearch search EXP --out RUN_DIR --no-progress ARGS` from this checkout, as a child process (so a
    test can kill it), its output piped as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "nasearch.cli.main", "search", str(exp), "--out", str(run_dir), "--no-progress"]
    return subprocess.Popen([*cmd, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
