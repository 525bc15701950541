"""Profiling a space into the latency database: every distinct unit signature, and a few whole networks.

Small spaces are enumerated (every architecture satisfying the constraints), so every signature the
space can produce at the size is measured. Large spaces are sampled (`max_archs` architectures) and
the coverage is stated: the share of the units of freshly sampled architectures (seeds not used for
profiling) whose signature the database already holds. A few whole networks, spread over the profiled
architectures by size, are measured too: prediction fits its per-network overhead on them.

Resuming is automatic: signatures and networks already stored for the fingerprint are skipped, and
each measurement is committed on its own, so a kill loses at most the one in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from nasearch.latency.backend import Backend
from nasearch.latency.db import LatencyDB
from nasearch.latency.units import Unit, arch_units
from nasearch.space import Architecture, Space
from nasearch.space import decisions as dec

DEFAULT_MAX_ARCHS = 48
DEFAULT_NETWORKS = 8
COVERAGE_SAMPLES = 40
SEED_OFFSET_HELD_OUT = 1_000_000


@dataclass
class ProfilePlan:
    """What a profile run covers: the architectures, and each distinct signature's first occurrence."""

    archs: list[Architecture]
    exhaustive: bool
    cardinality: int
    units: dict[str, list[Unit]] = field(default_factory=dict)  # arch hash -> units (meta)
    flops: dict[str, float] = field(default_factory=dict)  # arch hash -> FLOPs of the fused model

    @property
    def signatures(self) -> set[str]:
        return {u.signature for units in self.units.values() for u in units}

    def occurrences(self) -> int:
        return sum(len(units) for units in self.units.values())


def space_archs(space: Space, max_archs: int, seed: int = 0) -> tuple[list[Architecture], bool]:
    """Every feasible architecture when there are at most `max_archs`, else `max_archs` samples."""
    if space.cardinality() <= max_archs:
        archs = [space.to_arch(data) for data in dec.enumerate_all(space.tree) if not space.violations(data)]
        return _unique(archs), True
    archs, i = [], 0
    seen: set[str] = set()
    while len(archs) < max_archs and i < 20 * max_archs:
        arch = space.sample(seed + i)
        i += 1
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch)
    return archs, False


def _unique(archs: list[Architecture]) -> list[Architecture]:
    seen: dict[str, Architecture] = {}
    for a in archs:
        seen.setdefault(a.hash, a)
    return list(seen.values())


def at_size(arch: Architecture, imgsz: int | None) -> Architecture:
    return arch if imgsz is None or imgsz == arch.data["imgsz"] else arch.with_overrides(imgsz=imgsz)


def plan(space: Space, imgsz: int, batch: int = 1, max_archs: int = DEFAULT_MAX_ARCHS, seed: int = 0) -> ProfilePlan:
    archs, exhaustive = space_archs(space, max_archs, seed)
    archs = [at_size(a, imgsz) for a in archs]
    result = ProfilePlan(archs, exhaustive, space.cardinality())
    for arch in archs:
        model, result.units[arch.hash] = arch_units(arch, imgsz, batch)
        result.flops[arch.hash] = meta_flops(model, imgsz, batch)
    return result


def meta_flops(model: torch.nn.Module, imgsz: int, batch: int) -> float:
    """FLOPs of one forward pass of a model on the meta device (shapes only, no compute)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(batch, 3, imgsz, imgsz, device="meta"))
    return float(counter.get_total_flops())


def spread(archs: list[Architecture], sizes: dict[str, float], k: int) -> list[Architecture]:
    """`k` architectures evenly spaced in size (smallest and largest included)."""
    if k <= 0 or not archs:
        return []
    ordered = sorted(archs, key=lambda a: sizes[a.hash])
    if k >= len(ordered):
        return ordered
    picks = [round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)] if k > 1 else [len(ordered) // 2]
    return [ordered[i] for i in dict.fromkeys(picks)]


def coverage(
    space: Space,
    db: LatencyDB,
    fp_id: str,
    imgsz: int,
    batch: int,
    exhaustive: bool,
    samples: int = COVERAGE_SAMPLES,
    seed: int = 0,
) -> tuple[float, str]:
    """Share of unit occurrences of held-out random architectures that the database holds."""
    have = db.unit_signatures(fp_id)
    if exhaustive:
        return 1.0, "exhaustive: every architecture of the space was enumerated"
    total = hit = 0
    for i in range(samples):
        arch = at_size(space.sample(seed + SEED_OFFSET_HELD_OUT + i), imgsz)
        for unit in arch_units(arch, imgsz, batch)[1]:
            total += 1
            hit += unit.signature in have
    return (hit / total if total else 0.0), f"sampled: units of {samples} held-out random architectures"


def measure_arch_units(
    arch: Architecture,
    imgsz: int,
    backend: Backend,
    db: LatencyDB,
    fp_id: str,
    wanted: set[str] | None = None,
    on_unit: Callable[[Unit, bool], None] | None = None,
) -> int:
    """Measure and store the units of `arch` the database lacks (only those in `wanted` when given).
    Returns how many were added."""
    have = db.unit_signatures(fp_id)
    _, meta_units = arch_units(arch, imgsz, backend.batch)
    todo = {u.signature for u in meta_units if u.signature not in have and (wanted is None or u.signature in wanted)}
    if not todo:
        return 0
    _, units = arch_units(arch, imgsz, backend.batch, real=True)
    added = 0
    for unit in units:
        if unit.signature not in todo:
            continue
        todo.discard(unit.signature)
        timing = backend.measure_unit(unit)
        new = db.put_unit(fp_id, unit.signature, unit.kind, unit.block_type, unit.description, timing, unit.features)
        added += new
        if on_unit:
            on_unit(unit, new)
    return added


def measure_network(arch: Architecture, imgsz: int, backend: Backend, db: LatencyDB, fp_id: str) -> float:
    """Measure a whole network end to end and store it with its unit signatures; returns the median."""
    model, units = arch_units(arch, imgsz, backend.batch, real=True)
    timing = backend.measure_model(model, imgsz)
    db.put_network(fp_id, arch.hash, imgsz, arch.name, arch.data, [u.signature for u in units], timing)
    return timing.median_ms


@dataclass
class ProfileReport:
    space: str
    fingerprint_id: str
    fingerprint: dict
    imgsz: int
    batch: int
    archs: int
    exhaustive: bool
    cardinality: int
    signatures: int
    measured_now: int
    already_in_db: int
    networks_measured_now: int
    networks_in_db: int
    coverage: float
    coverage_method: str
    seconds: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def profile_space(
    space: Space,
    backend: Backend,
    db: LatencyDB,
    imgsz: int,
    max_archs: int = DEFAULT_MAX_ARCHS,
    networks: int = DEFAULT_NETWORKS,
    seed: int = 0,
    coverage_samples: int = COVERAGE_SAMPLES,
    progress: Callable[[str, int, int], None] | None = None,
) -> ProfileReport:
    """Measure every missing signature of the space (or of its sample), then the whole networks the
    overhead fit needs. `progress(label, done, total)` is called after each measurement."""
    start = time.monotonic()
    fp = backend.fingerprint()
    fp_id = db.add_fingerprint(fp)
    the_plan = plan(space, imgsz, backend.batch, max_archs, seed)
    all_sigs = the_plan.signatures
    have = db.unit_signatures(fp_id)
    missing = all_sigs - have
    chosen = spread(the_plan.archs, the_plan.flops, networks)
    nets_todo = [a for a in chosen if not db.has_network(fp_id, a.hash, imgsz)]
    total = len(missing) + len(nets_todo)
    done = 0
    measured = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(label, done, total)

    if progress:
        progress("start", 0, total)
    for arch in the_plan.archs:
        wanted = {u.signature for u in the_plan.units[arch.hash]} & missing
        if not wanted:
            continue
        measured += measure_arch_units(
            arch,
            imgsz,
            backend,
            db,
            fp_id,
            wanted,
            on_unit=lambda unit, new: tick(f"{unit.name} ({unit.block_type})"),
        )
        missing -= wanted
    for arch in nets_todo:
        measure_network(arch, imgsz, backend, db, fp_id)
        tick(f"network {arch.name}")
    cov, how = coverage(space, db, fp_id, imgsz, backend.batch, the_plan.exhaustive, coverage_samples, seed)
    return ProfileReport(
        space.name,
        fp_id,
        fp.as_dict(),
        imgsz,
        backend.batch,
        len(the_plan.archs),
        the_plan.exhaustive,
        the_plan.cardinality,
        len(all_sigs),
        measured,
        len(all_sigs & have),
        len(nets_todo),
        len(db.networks(fp_id)),
        round(cov, 4),
        how,
        round(time.monotonic() - start, 2),
    )
