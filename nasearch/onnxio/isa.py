"""Which INT8 kernels this CPU runs: whether ONNX Runtime's u8·s8 dot products can saturate here.

On x86-64 without VNNI (SSE4.1, AVX2, AVX-512 without VNNI) ONNX Runtime multiplies u8 activations by s8
weights with VPMADDUBSW, which adds pairs of products into 16 bits and can saturate; VNNI (VPDPBUSD)
accumulates in 32 bits, and other architectures have no such issue. The INT8 spec (`nasearch.onnxio.spec`)
picks its settings from this answer. `NASEARCH_INT8_ISA=vnni|no-vnni` forces either path (tests use it
to cover both on any machine); `auto` or unset detects.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from nasearch.errors import InputError

ISA_ENV = "NASEARCH_INT8_ISA"
ISAS = ("vnni", "no-vnni")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The instruction-set flags of the first processor in /proc/cpuinfo; None where there is no such file."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return None


def detect_isa(machine: str | None = None, flags: frozenset[str] | None = None) -> str:
    """`vnni` when u8·s8 dot products are exact here (x86 with VNNI, or not x86), else `no-vnni`.

    An x86 CPU whose flags cannot be read counts as `no-vnni`: its settings are correct on every CPU.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in X86_MACHINES:
        return "vnni"
    return "vnni" if flags is not None and flags & VNNI_FLAGS else "no-vnni"


def this_cpu_isa() -> str:
    """This machine's CPU path as detected, never forced by `NASEARCH_INT8_ISA`: what a measurement records."""
    return detect_isa(flags=cpu_flags())


def int8_isa() -> str:
    """The INT8 path to use: `NASEARCH_INT8_ISA` when set (vnni | no-vnni | auto), else detected."""
    forced = os.environ.get(ISA_ENV, "auto").strip().lower()
    if forced in ISAS:
        return forced
    if forced not in ("", "auto"):
        raise InputError(ISA_ENV, ISA_ENV, "vnni, no-vnni or auto", repr(forced))
    return this_cpu_isa()


def exact_int8_session(options: object) -> object:
    """ONNX Runtime session options whose u8·s8 products cannot saturate on this CPU (for evaluation).

    On CPUs without VNNI (detected: the hardware in hand, whatever `NASEARCH_INT8_ISA` chose the spec
    for) this sets ONNX Runtime's documented `session.x64quantprecision`, which runs the slower u8·u8
    kernels for graphs whose weights use the full s8 range (the TensorRT spec, or a CPU spec chosen for a
    VNNI machine); graphs written with this CPU's spec never need it. Latency sessions do not use it: they
    time the kernels a deployment runs.
    """
    if this_cpu_isa() == "no-vnni":
        options.add_session_config_entry("session.x64quantprecision", "1")  # type: ignore[attr-defined]
    return options
