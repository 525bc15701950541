"""Hypervolume and the delivered suite: from a latency/accuracy front to K models (like S/M/L).

Points are `(latency_ms, accuracy)`, latency minimised, accuracy maximised. The suite is either one
model per explicit latency target (the most accurate at or under it), or the K front members whose
hypervolume is largest: the exact optimum, by dynamic programming over the sorted 2-D front.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasearch.search.promotion import Point, pareto_indices

MARGIN = 0.1


def reference_point(points: Sequence[Point], latency_limit: float | None = None) -> Point:
    """The worst corner widened by 10% of the range: every front member, extremes included, counts.

    With a latency constraint, the limit is the latency bound of the reference."""
    lat = [p[0] for p in points]
    acc = [p[1] for p in points]
    lat_span = (max(lat) - min(lat)) or abs(max(lat)) or 1.0
    acc_span = (max(acc) - min(acc)) or abs(max(acc)) or 1.0
    lat_ref = latency_limit if latency_limit is not None else max(lat) + MARGIN * lat_span
    return (lat_ref, min(acc) - MARGIN * acc_span)


def hypervolume(points: Sequence[Point], ref: Point) -> float:
    """Area dominated by `points` and bounded by `ref` (exact, 2-D)."""
    inside = [p for p in points if p[0] < ref[0] and p[1] > ref[1]]
    if not inside:
        return 0.0
    front = sorted({inside[i] for i in pareto_indices(inside)})
    area, prev_acc = 0.0, ref[1]
    for lat, acc in front:  # ascending latency, so ascending accuracy along the front
        area += (ref[0] - lat) * (acc - prev_acc)
        prev_acc = acc
    return area


def best_under_targets(points: Sequence[Point], targets: Sequence[float]) -> list[int | None]:
    """For each latency target, the index of the most accurate point at or under it (None if none)."""
    out: list[int | None] = []
    for target in targets:
        under = [i for i, p in enumerate(points) if p[0] <= target]
        out.append(max(under, key=lambda i: (points[i][1], -points[i][0], -i)) if under else None)
    return out


def best_subset(points: Sequence[Point], k: int, ref: Point | None = None) -> list[int]:
    """Indices of the k front members with the largest hypervolume, by ascending latency."""
    front = pareto_indices(points)
    unique: dict[Point, int] = {}
    for i in sorted(front):
        unique.setdefault(points[i], i)
    order = sorted(unique.values(), key=lambda i: points[i])
    if len(order) <= k:
        return order
    ref = ref or reference_point([points[i] for i in order])
    n = len(order)
    gain = [max(0.0, ref[0] - points[i][0]) for i in order]
    # best[j][i]: largest area of j+1 members whose slowest is order[i]
    best = [[(gain[i] * (points[order[i]][1] - ref[1]), -1) for i in range(n)]]
    for j in range(1, k):
        row = []
        for i in range(n):
            candidates = [
                (best[j - 1][p][0] + gain[i] * (points[order[i]][1] - points[order[p]][1]), p)
                for p in range(i)
                if best[j - 1][p][1] != -2
            ]
            row.append(max(candidates) if candidates else (float("-inf"), -2))
        best.append(row)
    last = max(range(n), key=lambda i: best[k - 1][i][0])
    chosen, j, i = [], k - 1, last
    while i >= 0 and j >= 0:
        chosen.append(order[i])
        i, j = best[j][i][1], j - 1
    return sorted(chosen, key=lambda idx: points[idx])
