"""Device fingerprints: what a latency figure depends on besides the network itself.

A fingerprint names the processor or GPU, the backend and its version (and execution provider), the
thread count, the precision (for INT8, the quantization spec, `extra["int8_spec"]`) and the batch size.
Latencies measured under one fingerprint are only ever combined with latencies of the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux, else the platform's answer)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                name = line.split(":", 1)[1].strip()
                if name:
                    return " ".join(name.split())
    return platform.processor() or platform.machine() or "unknown-cpu"


@dataclass(frozen=True)
class Fingerprint:
    backend: str
    backend_version: str
    device: str
    provider: str
    threads: int
    precision: str
    batch: int
    clock: str = "wall"
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def id(self) -> str:
        canon = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human-readable description, e.g. `onnxruntime 1.32.0 CPUExecutionProvider on AMD EPYC`."""
        spec = f" ({self.extra['int8_spec']})" if "int8_spec" in self.extra else ""  # which INT8 graph was timed
        return (
            f"{self.backend} {self.backend_version} {self.provider} on {self.device}, "
            f"{self.threads} thread(s), {self.precision}{spec}, batch {self.batch}, {self.clock} clock"
        )

    @classmethod
    def from_dict(cls, data: dict) -> Fingerprint:
        return cls(**data)
