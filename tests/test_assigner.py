"""Task-aligned assigner on hand-built cases: one 64x64 image, one stride-8 level (8x8 anchors)."""

from __future__ import annotations

import pytest
import torch

from nasearch.train.assigner import TaskAlignedAssigner, centres_inside

STRIDE = 8
GRID = 8
NC = 3


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


def anchors() -> torch.Tensor:
    c = (torch.arange(GRID, dtype=torch.float32) + 0.5) * STRIDE
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack((xx, yy), -1).reshape(-1, 2)  # row-major, anchor i at (i % 8, i // 8)


def anchor_index(col: int, row: int) -> int:
    return row * GRID + col


def boxes_around(points: torch.Tensor, half: float) -> torch.Tensor:
    return torch.cat((points - half, points + half), -1)


def run(
    gt: list[list[float]],
    labels: list[int],
    pred_boxes: torch.Tensor | None = None,
    scores: torch.Tensor | None = None,
    mask: list[bool] | None = None,
    topk: int = 10,
):
    a = anchors()
    n = len(a)
    gt_boxes = torch.tensor([gt], dtype=torch.float32).reshape(1, -1, 4)
    gt_labels = torch.tensor([labels], dtype=torch.long).reshape(1, -1)
    gt_mask = torch.tensor([mask if mask is not None else [True] * len(labels)], dtype=torch.bool)
    gt_mask = gt_mask.reshape(1, -1)
    if pred_boxes is None:
        pred_boxes = boxes_around(a, 10.0)[None]
    if scores is None:
        scores = torch.full((1, n, NC), 0.5)
    return TaskAlignedAssigner(topk=topk)(scores, pred_boxes, a, gt_labels, gt_boxes, gt_mask)


def test_gt_covering_anchors_gets_exactly_those_anchors():
    gt = [16.0, 16.0, 40.0, 40.0]  # contains the centres 20, 28, 36 on both axes: 9 anchors
    out = run([gt], [2])
    expected = {anchor_index(c, r) for c in (2, 3, 4) for r in (2, 3, 4)}
    assert set(out.foreground[0].nonzero().flatten().tolist()) == expected
    fg = out.foreground[0]
    assert (out.labels[0][fg] == 2).all()
    assert torch.equal(out.boxes[0][fg], torch.tensor([gt]).expand(9, 4))
    assert (out.scores[0][fg][:, 2] > 0).all()
    assert (out.scores[0][fg][:, [0, 1]] == 0).all()
    assert (out.scores[0][~fg] == 0).all()


def test_no_gts_means_all_background():
    a = anchors()
    empty = TaskAlignedAssigner()(
        torch.rand(2, len(a), NC),
        boxes_around(a, 6.0)[None].repeat(2, 1, 1),
        a,
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0, dtype=torch.bool),
    )
    assert not empty.foreground.any()
    assert empty.scores.abs().sum() == 0
    padded_only = run([[16.0, 16.0, 40.0, 40.0]], [1], mask=[False])
    assert not padded_only.foreground.any()
    assert padded_only.scores.abs().sum() == 0


def test_topk_keeps_the_best_aligned_candidates():
    a = anchors()
    gt = [0.0, 0.0, 40.0, 40.0]  # 5x5 = 25 candidate anchors
    pred = boxes_around(a, 4.0)[None].clone()  # poor boxes everywhere...
    good = [anchor_index(2, 2), anchor_index(1, 2), anchor_index(3, 1)]
    for i in good:
        pred[0, i] = torch.tensor(gt)  # ...except three anchors that predict the gt exactly
    out = run([gt], [0], pred_boxes=pred, topk=3)
    assert set(out.foreground[0].nonzero().flatten().tolist()) == set(good)
    # each of them has IoU 1 and the same score, so each target equals the best IoU (1) of the gt
    assert torch.allclose(out.scores[0, good, 0], torch.ones(3), atol=1e-5)


def test_alignment_targets_are_normalized_to_the_best_iou():
    a = anchors()
    gt = torch.tensor([16.0, 16.0, 40.0, 40.0])
    pred = boxes_around(a, 10.0)[None].clone()
    best = anchor_index(3, 3)
    pred[0, best] = gt + torch.tensor([0.0, 0.0, 4.0, 0.0])  # IoU 24*24 / (28*24) = 6/7
    scores = torch.full((1, len(a), NC), 0.5)
    out = run([gt.tolist()], [1], pred_boxes=pred, scores=scores)
    targets = out.scores[0, :, 1]
    assert abs(float(targets.max()) - 6 / 7) < 1e-5
    assert int(targets.argmax()) == best
    assert (targets[out.foreground[0]] > 0).all()


def test_anchor_claimed_by_two_gts_keeps_the_one_it_overlaps_most():
    a = anchors()
    big = [8.0, 8.0, 56.0, 56.0]
    small = [16.0, 16.0, 32.0, 32.0]  # inside `big`; anchors (2..3, 2..3) are candidates of both
    pred = boxes_around(a, 8.0)[None]  # 16x16 boxes: the small gt overlaps them more
    out = run([big, small], [0, 1], pred_boxes=pred, topk=64)
    shared = [anchor_index(c, r) for c in (2, 3) for r in (2, 3)]
    assert out.foreground[0, shared].all()
    assert out.gt_index[0, shared].tolist() == [1, 1, 1, 1]
    assert out.labels[0, shared].tolist() == [1, 1, 1, 1]
    assert (out.scores[0, shared, 0] == 0).all()
    elsewhere = anchor_index(5, 5)
    assert out.gt_index[0, elsewhere] == 0 and out.labels[0, elsewhere] == 0


def test_tiny_box_without_anchor_centre_falls_back_to_nearest_anchor():
    gt = [21.0, 21.0, 23.0, 23.0]  # 2 px box, no centre inside; nearest centre is (20, 20)
    assert not centres_inside(anchors(), torch.tensor([[gt]])).any()
    out = run([gt], [2])
    assert out.foreground[0].nonzero().flatten().tolist() == [anchor_index(2, 2)]
    assert out.labels[0, anchor_index(2, 2)] == 2


def test_batched_with_padding_matches_one_image_at_a_time():
    torch.manual_seed(0)
    a = anchors()
    n = len(a)
    scores = torch.rand(2, n, NC)
    pred = boxes_around(a, 12.0)[None].repeat(2, 1, 1) + torch.randn(2, n, 4)
    gts = [[[4.0, 4.0, 30.0, 28.0], [30.0, 20.0, 60.0, 62.0]], [[10.0, 34.0, 50.0, 60.0]]]
    labels = [[0, 2], [1]]
    gt_boxes = torch.zeros(2, 2, 4)
    gt_labels = torch.zeros(2, 2, dtype=torch.long)
    gt_mask = torch.zeros(2, 2, dtype=torch.bool)
    for i, (g, lab) in enumerate(zip(gts, labels, strict=True)):
        gt_boxes[i, : len(g)] = torch.tensor(g)
        gt_labels[i, : len(lab)] = torch.tensor(lab)
        gt_mask[i, : len(lab)] = True
    gt_boxes[1, 1] = torch.tensor([0.0, 0.0, 64.0, 64.0])  # padding row with a box that covers everything
    batched = TaskAlignedAssigner()(scores, pred, a, gt_labels, gt_boxes, gt_mask)
    for i in range(2):
        own_mask = torch.ones(1, len(labels[i]), dtype=torch.bool)
        single = TaskAlignedAssigner()(
            scores[i : i + 1], pred[i : i + 1], a, torch.tensor([labels[i]]), torch.tensor([gts[i]]), own_mask
        )
        assert torch.equal(batched.foreground[i], single.foreground[0])
        assert torch.allclose(batched.scores[i], single.scores[0])
        fg = single.foreground[0]
        assert torch.equal(batched.boxes[i][fg], single.boxes[0][fg])
