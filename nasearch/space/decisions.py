"""Decisions inside a space tree: `{choice: [...]}` and `{range: [lo, hi], step: s}`.

A space is a plain tree (mappings, lists, scalars) in which some nodes are decisions. A choice may
hold whole sub-trees, which is how conditional sub-spaces are written: the parameters of a stage exist
only in the branch of the block type chosen for it. Everything here is pure tree arithmetic.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from nasearch.errors import InputError, describe

MAX_RANGE_VALUES = 100_000


def is_decision(node: Any) -> bool:
    if not isinstance(node, dict) or not node:
        return False
    keys = set(node)
    return keys == {"choice"} or ("range" in keys and keys <= {"range", "step"})


def check_decision_shape(node: dict, path: str, file: str) -> None:
    """Reject malformed decisions with a precise message."""
    if "choice" in node:
        extra = set(node) - {"choice"}
        if extra:
            raise InputError(file, path, "a choice mapping with only the key 'choice'", f"extra keys {sorted(extra)}")
        opts = node["choice"]
        if not isinstance(opts, list) or not opts:
            raise InputError(file, f"{path}.choice", "a non-empty list of options", describe(opts))
        return
    extra = set(node) - {"range", "step"}
    if extra:
        raise InputError(file, path, "a range mapping with keys 'range' and 'step'", f"extra keys {sorted(extra)}")
    rng = node["range"]
    num = (int, float)
    if (
        not isinstance(rng, list)
        or len(rng) != 2
        or not all(isinstance(v, num) and not isinstance(v, bool) for v in rng)
    ):
        raise InputError(file, f"{path}.range", "[low, high] numbers", describe(rng))
    lo, hi = rng
    if lo > hi:
        raise InputError(file, f"{path}.range", "low <= high", f"[{lo}, {hi}]")
    is_int = all(isinstance(v, int) for v in rng)
    step = node.get("step", 1 if is_int else None)
    if step is None:
        raise InputError(file, f"{path}.step", "a step for a float range", "nothing")
    if not isinstance(step, num) or isinstance(step, bool) or step <= 0:
        raise InputError(file, f"{path}.step", "a positive number", describe(step))
    if is_int and not isinstance(step, int):
        raise InputError(file, f"{path}.step", "an integer step for an integer range", describe(step))
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_RANGE_VALUES:
        raise InputError(file, f"{path}.range", f"at most {MAX_RANGE_VALUES} values", f"{count} values")


def range_values(node: dict) -> list[int | float]:
    lo, hi = node["range"]
    if all(isinstance(v, int) for v in (lo, hi)) and isinstance(node.get("step", 1), int):
        return list(range(lo, hi + 1, node.get("step", 1)))
    step = node["step"]
    n = math.floor((hi - lo) / step + 1e-9) + 1
    return [round(lo + i * step, 10) for i in range(n)]


def option_labels(options: list) -> list[str]:
    """Stable, readable labels for the options of a choice (the block type where unique)."""
    types = [o.get("type") if isinstance(o, dict) else None for o in options]
    if all(isinstance(t, str) for t in types) and len(set(types)) == len(types):
        return [str(t) for t in types]
    return [str(i) for i in range(len(options))]


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def cardinality(node: Any) -> int:
    """Exact number of distinct resolutions of a tree (a Python int: spaces reach 10^20 and beyond)."""
    if is_decision(node):
        if "choice" in node:
            return sum(cardinality(o) for o in node["choice"])
        return len(range_values(node))
    if isinstance(node, dict):
        return math.prod(cardinality(v) for v in node.values())
    if isinstance(node, list):
        return math.prod(cardinality(v) for v in node)
    return 1


class Chooser(Protocol):
    """Makes each decision; random sampling and Optuna trials both implement it."""

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int: ...

    def integer(self, name: str, low: int, high: int, step: int) -> int: ...

    def real(self, name: str, low: float, high: float, step: float) -> float: ...


def resolve(node: Any, chooser: Chooser, path: str = "") -> Any:
    """Turn a space tree into a concrete tree by asking `chooser` for each decision on the chosen path."""
    if is_decision(node):
        if "choice" in node:
            options = node["choice"]
            if all(_scalar(o) for o in options):
                idx = chooser.choose(path, [repr(o) for o in options], [1] * len(options))
                return options[idx]
            labels = option_labels(options)
            idx = chooser.choose(path, labels, [cardinality(o) for o in options])
            return resolve(options[idx], chooser, f"{path}|{labels[idx]}")
        lo, hi = node["range"]
        values = range_values(node)
        if all(isinstance(v, int) for v in values):
            return chooser.integer(path, lo, hi, node.get("step", 1))
        return chooser.real(path, float(lo), float(hi), float(node["step"]))
    if isinstance(node, dict):
        return {k: resolve(v, chooser, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, chooser, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def enumerate_all(node: Any) -> Iterator[Any]:
    """Every resolution of a tree, in a fixed order (for brute-force checks on small spaces)."""
    if is_decision(node):
        if "choice" in node:
            for opt in node["choice"]:
                yield from enumerate_all(opt)
        else:
            yield from range_values(node)
        return
    if isinstance(node, dict):
        keys = list(node)
        for combo in itertools.product(*(list(enumerate_all(node[k])) for k in keys)):
            yield dict(zip(keys, combo, strict=True))
        return
    if isinstance(node, list):
        for combo in itertools.product(*(list(enumerate_all(v)) for v in node)):
            yield list(combo)
        return
    yield node


def _num_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def match(node: Any, value: Any, path: str = "") -> str | None:
    """None when `value` is one resolution of `node`; otherwise the first reason it is not."""
    where = path or "<root>"
    if is_decision(node):
        if "choice" in node:
            reasons = []
            for opt in node["choice"]:
                reason = match(opt, value, path)
                if reason is None:
                    return None
                reasons.append(reason)
            if all(_scalar(o) for o in node["choice"]):
                return f"{where}: {value!r} is not one of {node['choice']}"
            return min(reasons, key=lambda r: -r.count("."))  # the deepest mismatch explains best
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{where}: {value!r} is not a number"
        if not any(_num_equal(value, v) for v in range_values(node)):
            lo, hi = node["range"]
            return f"{where}: {value!r} is not in range [{lo}, {hi}] step {node.get('step', 1)}"
        return None
    if isinstance(node, dict):
        if not isinstance(value, dict):
            return f"{where}: expected a mapping, found {value!r}"
        for key in node:
            if key not in value:
                return f"{_join(path, key)}: missing"
            reason = match(node[key], value[key], _join(path, key))
            if reason:
                return reason
        extra = set(value) - set(node)
        return f"{_join(path, sorted(extra)[0])}: not in the space" if extra else None
    if isinstance(node, list):
        if not isinstance(value, list) or len(value) != len(node):
            return f"{where}: expected a list of {len(node)}, found {value!r}"
        for i, (n, v) in enumerate(zip(node, value, strict=True)):
            reason = match(n, v, f"{path}[{i}]")
            if reason:
                return reason
        return None
    return None if _num_equal(node, value) else f"{where}: {value!r} differs from the fixed {node!r}"


@dataclass(frozen=True)
class DecisionInfo:
    name: str
    kind: str  # "choice" | "int" | "float"
    size: int


def list_decisions(node: Any, path: str = "") -> list[DecisionInfo]:
    """Every decision in every branch, named as `resolve` names them."""
    out: list[DecisionInfo] = []
    if is_decision(node):
        if "choice" in node:
            options = node["choice"]
            out.append(DecisionInfo(path, "choice", len(options)))
            if not all(_scalar(o) for o in options):
                for label, opt in zip(option_labels(options), options, strict=True):
                    out.extend(list_decisions(opt, f"{path}|{label}"))
        else:
            values = range_values(node)
            kind = "int" if all(isinstance(v, int) for v in values) else "float"
            out.append(DecisionInfo(path, kind, len(values)))
    elif isinstance(node, dict):
        for k, v in node.items():
            out.extend(list_decisions(v, _join(path, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(list_decisions(v, f"{path}[{i}]"))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def assignments(node: Any, value: Any, path: str = "") -> dict[str, Any] | None:
    """The decisions that produce `value` from `node`, named as `resolve` names them (None if none do).

    Choices map to the chosen label (the option's repr for scalar options), ranges to the value:
    exactly what a Chooser would have answered, so a known architecture (a preset) can be replayed
    as a trial.
    """
    if is_decision(node):
        if "choice" in node:
            options = node["choice"]
            scalar = all(_scalar(o) for o in options)
            labels = [repr(o) for o in options] if scalar else option_labels(options)
            for label, opt in zip(labels, options, strict=True):
                sub = assignments(opt, value, f"{path}|{label}")
                if sub is not None:
                    return {path: label, **sub}
            return None
        return {path: value} if match(node, value) is None else None
    if isinstance(node, dict):
        if not isinstance(value, dict) or set(value) != set(node):
            return None
        out: dict[str, Any] = {}
        for k in node:
            sub = assignments(node[k], value[k], _join(path, k))
            if sub is None:
                return None
            out.update(sub)
        return out
    if isinstance(node, list):
        if not isinstance(value, list) or len(value) != len(node):
            return None
        out = {}
        for i, (n, v) in enumerate(zip(node, value, strict=True)):
            sub = assignments(n, v, f"{path}[{i}]")
            if sub is None:
                return None
            out.update(sub)
        return out
    return {} if _num_equal(node, value) else None


class ReplayChooser:
    """Answers every decision from a fixed assignment (the inverse of `assignments`)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        return labels.index(self.answers[name])

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return int(self.answers[name])

    def real(self, name: str, low: float, high: float, step: float) -> float:
        return float(self.answers[name])
