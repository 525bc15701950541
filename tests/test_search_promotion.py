"""Pareto promotion, hypervolume and suite selection on hand-made fronts (pure functions)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from nasearch.search.promotion import (
    MemoryBoard,
    crowding_distances,
    decide,
    dominates,
    is_promoted,
    nondominated_ranks,
    pareto_indices,
    promotion_order,
    quota,
)
from nasearch.search.suite import best_subset, best_under_targets, hypervolume, reference_point

# (latency ms, accuracy): lower latency, higher accuracy is better
POINTS = [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (2.0, 15.0), (4.0, 25.0), (5.0, 5.0)]


def test_dominance_and_ranks() -> None:
    assert dominates((1.0, 10.0), (2.0, 10.0))
    assert not dominates((1.0, 10.0), (1.0, 10.0))
    assert not dominates((1.0, 10.0), (2.0, 20.0))
    assert nondominated_ranks(POINTS) == [0, 0, 0, 1, 1, 2]
    assert sorted(pareto_indices(POINTS)) == [0, 1, 2]


def test_crowding_extremes_are_infinite_and_interior_is_normalised() -> None:
    ranks = nondominated_ranks(POINTS)
    crowd = crowding_distances(POINTS, ranks)
    assert math.isinf(crowd[0]) and math.isinf(crowd[2])
    # (2, 20) sits between (1, 10) and (3, 30): (3-1)/(3-1) + (30-10)/(30-10) = 2
    assert crowd[1] == pytest.approx(2.0)
    assert promotion_order(POINTS)[:3] == [0, 2, 1]


def test_quota_and_promotion_follow_successive_halving() -> None:
    assert quota(1, 3) == 1 and quota(5, 3) == 1 and quota(6, 3) == 2 and quota(90, 3) == 30
    # rank-0 candidates always move up; others only inside the top floor(n / eta)
    assert all(is_promoted(i, POINTS, 3.0) for i in (0, 1, 2))
    assert not is_promoted(5, POINTS, 3.0)
    assert not is_promoted(3, POINTS, 3.0)  # rank 1, position 4 of 6, quota 2
    assert is_promoted(3, POINTS, 1.2)  # quota 5 takes it


def test_about_one_in_eta_is_promoted_on_random_points() -> None:
    rng = random.Random(0)
    board = MemoryBoard()
    promoted = 0
    n = 300
    for k in range(n):
        lat = rng.uniform(1, 10)
        acc = 10 * math.log(lat) + rng.gauss(0, 3)  # correlated, like real detectors
        board.record(str(k), 0, (lat, acc), True)
        promoted += decide(board, str(k), 0, 3.0)
    assert n / 3 * 0.8 <= promoted <= n / 3 * 1.6


def test_infeasible_results_never_enter_the_board() -> None:
    board = MemoryBoard()
    board.record("a", 0, (1.0, 1.0), False)
    board.record("b", 0, (2.0, float("nan")), True)
    assert board.points(0) == {}
    assert not decide(board, "a", 0, 3.0)


def test_hypervolume_by_hand() -> None:
    ref = (10.0, 0.0)
    # staircase: (2,5) covers 8x5=40; (6,9) adds (10-6)x(9-5)=16; (7,4) is dominated
    assert hypervolume([(2.0, 5.0), (6.0, 9.0), (7.0, 4.0)], ref) == pytest.approx(56.0)
    assert hypervolume([(11.0, 5.0)], ref) == 0.0
    assert hypervolume([], ref) == 0.0


def test_reference_point_widens_the_worst_corner() -> None:
    assert reference_point([(1.0, 10.0), (3.0, 30.0)]) == pytest.approx((3.2, 8.0))
    assert reference_point([(1.0, 10.0), (3.0, 30.0)], latency_limit=5.0)[0] == 5.0


def _brute_best(points: list[tuple[float, float]], k: int, ref: tuple[float, float]) -> float:
    front = [points[i] for i in pareto_indices(points)]
    return max(hypervolume(list(c), ref) for c in itertools.combinations(front, min(k, len(front))))


@pytest.mark.parametrize("seed", range(6))
def test_best_subset_is_the_exact_hypervolume_optimum(seed: int) -> None:
    rng = random.Random(seed)
    pts = []
    for _ in range(40):
        lat = rng.uniform(1, 20)
        pts.append((lat, 30 * (1 - math.exp(-lat / 6)) + rng.uniform(-3, 3)))
    front = [pts[i] for i in pareto_indices(pts)]
    ref = reference_point(front)
    for k in (1, 2, 3, 4):
        chosen = best_subset(pts, k, ref)
        assert len(chosen) == min(k, len(front))
        assert all(i in pareto_indices(pts) for i in chosen)
        assert hypervolume([pts[i] for i in chosen], ref) == pytest.approx(_brute_best(pts, k, ref))


def test_suite_of_three_on_a_knee_front() -> None:
    front = [(1.0, 20.0), (1.5, 30.0), (2.0, 38.0), (2.5, 40.0), (6.0, 41.0), (12.0, 44.0), (13.0, 44.1)]
    # reference (14.2, 17.59): {1.5, 2.5, 12} covers 12.7*12.41 + 11.7*10 + 2.2*4 = 283.4 square units,
    # {1.5, 2.0, 12} 268.4, {1.0, 2.0, 12} 264.6; alone, (2.5, 40) covers most: 11.7 * 22.41 = 262.2
    chosen = best_subset(front, 3)
    assert [front[i] for i in chosen] == [(1.5, 30.0), (2.5, 40.0), (12.0, 44.0)]
    assert hypervolume([front[i] for i in chosen], reference_point(front)) == pytest.approx(283.4, abs=0.1)
    assert [front[i] for i in best_subset(front, 1)] == [(2.5, 40.0)]


def test_latency_targets_pick_the_most_accurate_under_each() -> None:
    pts = [(1.0, 20.0), (2.0, 38.0), (2.9, 39.0), (6.0, 41.0), (12.0, 44.0)]
    assert best_under_targets(pts, [0.5, 2.0, 3.0, 100.0]) == [None, 1, 2, 4]
