"""Multi-fidelity Pareto promotion: successive halving on non-dominated rank (as MO-ASHA does).

Every candidate is screened (rung 0). After each rung a candidate is promoted to the next, more
expensive one when it is non-dominated among the `n` feasible candidates that reached the same rung,
or among the best `max(1, floor(n / eta))` of them ordered by non-dominated rank (latency down,
accuracy up), then by crowding distance inside a rank (the NSGA-II order), ties by arrival. So the
front of every rung always moves up, and otherwise about 1/eta of a rung does. Decisions are
asynchronous, like ASHA:
a candidate is compared with everything that has reached its rung so far and never waits; a candidate
that was not promoted is not reconsidered later. Reference candidates (presets) are always promoted.

Points are `(latency_ms, accuracy)`; latency is minimised, accuracy maximised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

Point = tuple[float, float]


def dominates(a: Point, b: Point) -> bool:
    """a is no slower and no less accurate than b, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def nondominated_ranks(points: Sequence[Point]) -> list[int]:
    """Rank 0 is the Pareto front, rank 1 the front once rank 0 is removed, and so on."""
    n = len(points)
    dominated_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                beats[i].append(j)
                dominated_by[j] += 1
            elif dominates(points[j], points[i]):
                beats[j].append(i)
                dominated_by[i] += 1
    ranks = [0] * n
    current = [i for i in range(n) if dominated_by[i] == 0]
    rank = 0
    while current:
        nxt = []
        for i in current:
            ranks[i] = rank
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current, rank = nxt, rank + 1
    return ranks


def crowding_distances(points: Sequence[Point], ranks: Sequence[int]) -> list[float]:
    """NSGA-II crowding distance inside each rank (extremes of a rank get infinity)."""
    out = [0.0] * len(points)
    for rank in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == rank]
        for axis in (0, 1):
            order = sorted(members, key=lambda i: (points[i][axis], i))
            lo, hi = points[order[0]][axis], points[order[-1]][axis]
            out[order[0]] = out[order[-1]] = math.inf
            span = hi - lo
            if span <= 0:
                continue
            for k in range(1, len(order) - 1):
                out[order[k]] += (points[order[k + 1]][axis] - points[order[k - 1]][axis]) / span
    return out


def promotion_order(points: Sequence[Point]) -> list[int]:
    """Indices from most to least deserving: rank, then larger crowding distance, then arrival."""
    ranks = nondominated_ranks(points)
    crowd = crowding_distances(points, ranks)
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowd[i], i))


def quota(n: int, eta: float) -> int:
    return max(1, math.floor(n / eta + 1e-9))


def is_promoted(index: int, points: Sequence[Point], eta: float) -> bool:
    """Whether `points[index]` is non-dominated or among the best `quota(n, eta)` of `points` (one rung)."""
    if not any(dominates(p, points[index]) for p in points):
        return True
    order = promotion_order(points)
    return order.index(index) < quota(len(points), eta)


def pareto_indices(points: Sequence[Point]) -> list[int]:
    ranks = nondominated_ranks(points)
    return [i for i, r in enumerate(ranks) if r == 0]


class RungBoard(Protocol):
    """Where the results of each rung are kept, so that asynchronous promotion can compare them."""

    def points(self, rung: int) -> dict[str, Point]:
        """Feasible results at `rung`, by candidate key (arrival order)."""
        ...

    def record(self, key: str, rung: int, point: Point, feasible: bool) -> None: ...


def decide(board: RungBoard, key: str, rung: int, eta: float) -> bool:
    """Promote candidate `key` past `rung`? (It must have recorded a feasible result at `rung`.)"""
    pts = board.points(rung)
    if key not in pts:
        return False
    keys = list(pts)
    return is_promoted(keys.index(key), [pts[k] for k in keys], eta)


class MemoryBoard:
    """A board in memory (tests, and the state held by the Ray promotion actor)."""

    def __init__(self) -> None:
        self._rungs: dict[int, dict[str, Point]] = {}

    def points(self, rung: int) -> dict[str, Point]:
        return dict(self._rungs.get(rung, {}))

    def record(self, key: str, rung: int, point: Point, feasible: bool) -> None:
        if feasible and all(math.isfinite(v) for v in point):
            self._rungs.setdefault(rung, {})[key] = (float(point[0]), float(point[1]))
