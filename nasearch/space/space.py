"""Search spaces: a validated space tree plus constraints; size, sampling and membership."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasearch import yamlio
from nasearch.errors import InputError, describe
from nasearch.resources import resolve_named, shipped
from nasearch.space import decisions as dec
from nasearch.space.arch import Architecture, load_presets, presets_dir
from nasearch.space.constraints import Constraint, parse_constraints
from nasearch.space.schema import validate_arch, validate_space_tree

MAX_TRIES = 2000


class RandomChooser:
    """Uniform per decision; with `by_size`, choice options weighted by their sub-space sizes, which
    makes whole architectures uniformly likely (used to estimate the feasible fraction)."""

    def __init__(self, rng: random.Random, by_size: bool = False) -> None:
        self.rng, self.by_size = rng, by_size

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        if self.by_size and len(set(weights)) > 1:
            return self.rng.choices(range(len(labels)), weights=weights)[0]
        return self.rng.randrange(len(labels))

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return self.rng.randrange(low, high + 1, step)

    def real(self, name: str, low: float, high: float, step: float) -> float:
        n = math.floor((high - low) / step + 1e-9)
        return round(low + self.rng.randint(0, n) * step, 10)


@dataclass
class Space:
    name: str
    tree: dict[str, Any]
    constraints: list[Constraint]
    source: str = "<memory>"
    description: str = ""
    _presets_dir: Path | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>") -> Space:
        if not isinstance(data, dict):
            raise InputError(source, "<root>", "a mapping (a search space)", describe(data))
        tree = validate_space_tree(data, source)
        constraints = parse_constraints(data.get("constraints"), tree, source)
        desc = data.get("description", "")
        if not isinstance(desc, str):
            raise InputError(source, "description", "a string", describe(desc))
        space = cls(str(tree.get("name", "space")), tree, constraints, source, desc)
        space._check_satisfiable()
        return space

    # -- size -------------------------------------------------------------------------------------
    def cardinality(self) -> int:
        """Exact number of architectures, ignoring constraints."""
        return dec.cardinality(self.tree)

    def cardinality_log10(self) -> float:
        n = self.cardinality()
        return round(math.log10(n), 3) if n > 0 else 0.0

    def feasible_fraction(self, samples: int = 2000, seed: int = 0) -> float:
        """Share of architectures that satisfy the constraints (exact for small spaces, else sampled)."""
        if not self.constraints:
            return 1.0
        if self.cardinality() <= samples:
            total = ok = 0
            for arch in dec.enumerate_all(self.tree):
                total += 1
                ok += not self.violations(arch)
            return ok / total
        rng = random.Random(seed)
        chooser = RandomChooser(rng, by_size=True)
        ok = sum(not self.violations(dec.resolve(self.tree, chooser)) for _ in range(samples))
        return ok / samples

    def decisions(self) -> list[dec.DecisionInfo]:
        return dec.list_decisions(self.tree)

    # -- membership -------------------------------------------------------------------------------
    def violations(self, arch: dict) -> list[str]:
        return [v for c in self.constraints for v in c.violations(arch)]

    def contains(self, arch: Architecture) -> tuple[bool, str]:
        body = {k: v for k, v in self.tree.items() if k != "name"}
        data = {k: v for k, v in arch.data.items() if k != "name"}
        reason = dec.match(body, data)
        if reason:
            return False, reason
        bad = self.violations(arch.data)
        return (False, f"violates constraint {bad[0]}") if bad else (True, "inside")

    def presets_inside(self) -> list[str]:
        return [
            name for name, arch in load_presets(self._presets_dir or presets_dir()).items() if self.contains(arch)[0]
        ]

    # -- sampling ---------------------------------------------------------------------------------
    def resolve(self, chooser: dec.Chooser) -> dict:
        """One resolution (constraints not checked): the search's define-by-run entry point."""
        return dec.resolve(self.tree, chooser)

    def to_arch(self, data: dict) -> Architecture:
        arch = Architecture(validate_arch(data, self.source), self.source)
        named = {**arch.data, "name": f"{self.name}-{arch.hash[:8]}"}
        return Architecture(named, self.source)

    def sample(self, seed: int = 0) -> Architecture:
        """A random architecture satisfying the constraints, reproducible by seed."""
        rng = random.Random(seed)
        chooser = RandomChooser(rng)
        for _ in range(MAX_TRIES):
            data = dec.resolve(self.tree, chooser)
            if not self.violations(data):
                return self.to_arch(data)
        raise InputError(
            self.source,
            "constraints",
            "constraints that sampled architectures can satisfy",
            f"none of {MAX_TRIES} samples satisfied them",
        )

    def _check_satisfiable(self) -> None:
        if not self.constraints:
            return
        if self.cardinality() <= 20_000:
            if any(not self.violations(a) for a in dec.enumerate_all(self.tree)):
                return
            raise InputError(
                self.source,
                "constraints",
                "constraints that some architecture satisfies",
                "none of the space's architectures satisfies them",
            )
        self.sample(0)


def spaces_dir() -> Path:
    return shipped("search_spaces")


def resolve_space_path(ref: str | Path) -> Path:
    """A space argument is a file path or the name of a shipped space (e.g. `yolo_nas_space`)."""
    return resolve_named(ref, spaces_dir())


def load_space(ref: str | Path) -> Space:
    path = resolve_space_path(ref)
    data = yamlio.load_mapping(path)
    space = Space.from_dict(data, str(path))
    local = path.parent / "presets"
    space._presets_dir = local if local.is_dir() else None
    return space


def decision_values(space: Space, arch: Architecture) -> dict[str, Any] | None:
    """The decision assignment that yields `arch` in `space` (e.g. to enqueue a preset as a trial)."""
    body = {k: v for k, v in space.tree.items() if k != "name"}
    data = {k: v for k, v in arch.data.items() if k != "name"}
    return dec.assignments(body, data)
