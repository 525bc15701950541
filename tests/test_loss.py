"""Detection loss: exact predictions cost ~nothing, DFL prefers the right bins, every head layout works."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nasearch.space import build_model, load_arch, load_space
from nasearch.train.loss import DetectionLoss, dfl_loss, pad_targets
from nasearch.train.short import lr_factor, train_steps

STRIDE = 8
GRID = 8  # one 8x8 level of a 64x64 image
NC = 3
GT = [20.0, 20.0, 44.0, 44.0]  # stride units 2.5..5.5: anchors (3..4, 3..4) inside, integer distances 1 and 2


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


def centres() -> torch.Tensor:
    c = torch.arange(GRID, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack((xx, yy), -1).reshape(-1, 2)  # stride units


RawOutput = list[tuple[torch.Tensor, torch.Tensor]]


def exact_raw(bins: int, shift: float = 0.0, cls_logit: float = 12.0) -> RawOutput:
    """One level whose every anchor predicts GT exactly (plus `shift` stride units on its right side)."""
    gt = torch.tensor(GT) / STRIDE
    c = centres()
    dist = torch.stack((c[:, 0] - gt[0], c[:, 1] - gt[1], gt[2] - c[:, 0] + shift, gt[3] - c[:, 1]), -1)
    n = GRID * GRID
    if bins == 1:
        box = dist.T.reshape(1, 4, GRID, GRID)
    else:
        # a two-hot distribution around each (clipped) distance, as logits
        d = dist.clamp(0, bins - 1 - 1e-4)
        left = d.floor().long()
        w_right = d - left
        probs = torch.zeros(n, 4, bins)
        probs.scatter_(2, left[..., None], (1 - w_right)[..., None])
        probs.scatter_add_(2, (left + 1).clamp(max=bins - 1)[..., None], w_right[..., None])
        box = probs.clamp(min=1e-12).log().permute(1, 2, 0).reshape(1, 4 * bins, GRID, GRID)
    inside = ((c > gt[:2]) & (c < gt[2:])).all(-1).float()
    cls = torch.full((1, NC, n), -cls_logit)
    cls[0, 1] = inside * 2 * cls_logit - cls_logit  # class 1 confident exactly where the gt is
    return [(box.clone().requires_grad_(True), cls.reshape(1, NC, GRID, GRID).requires_grad_(True))]


def targets() -> torch.Tensor:
    return torch.tensor([[0.0, 1.0, *GT]])


@pytest.mark.parametrize("bins", [16, 17, 1])
def test_exact_prediction_has_near_zero_box_and_dfl_loss(bins):
    loss = DetectionLoss(NC, bins, strides=(STRIDE,))
    total, parts, assigned = loss.compute(exact_raw(bins), targets())
    assert assigned.foreground.sum() == 4  # the 2x2 anchors whose centres lie inside the gt
    assert parts["box"] < 1e-5  # CIoU of identical boxes
    assert parts["dfl"] < 1e-6  # one-hot bins at integer distances (and no DFL term at all when bins == 1)
    assert parts["cls"] < 1e-3
    assert math.isclose(float(total.detach()), sum(parts.values()), rel_tol=1e-5)  # batch of 1

    _, worse, _ = loss.compute(exact_raw(bins, shift=1.0), targets())
    assert worse["box"] > 0.05
    if bins > 1:
        assert worse["dfl"] > 1.0


def test_dfl_is_minimal_at_the_right_bins():
    target = torch.tensor([[3.3, 0.0, 6.0, 2.5]])
    bins = 8
    for side, best in enumerate((3, 0, 6, 2)):  # 3.3 -> bin 3 (weight 0.7); 2.5 ties bins 2 and 3
        costs = []
        for b in range(bins):
            peak = torch.full((1, 1, bins), -20.0)
            peak[0, 0, b] = 20.0
            costs.append(float(dfl_loss(peak, target[:, side : side + 1])))
        assert min(range(bins), key=costs.__getitem__) == best
        if target[0, side] == best:  # an integer target: the one-hot distribution costs nothing
            assert costs[best] < 1e-6
    # the global minimum is the two-hot split around the target: expectation == target, loss == entropy
    free = torch.zeros(1, 4, bins, requires_grad=True)
    opt = torch.optim.Adam([free], lr=0.1)
    for _ in range(400):
        opt.zero_grad()
        dfl_loss(free, target).sum().backward()
        opt.step()
    prob = free.softmax(-1)
    expectation = (prob * torch.arange(bins)).sum(-1)
    assert torch.allclose(expectation, target, atol=0.02)
    entropy = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3) + 2 * 0.5 * math.log(0.5)) / 4
    assert abs(float(dfl_loss(free, target).detach()) - entropy) < 0.01


def test_no_targets_leaves_only_the_classification_term():
    raw = exact_raw(16)
    total, parts, assigned = DetectionLoss(NC, 16, strides=(STRIDE,)).compute(raw, torch.zeros(0, 6))
    assert not assigned.foreground.any()
    assert parts["box"] == 0.0 and parts["dfl"] == 0.0
    assert parts["cls"] > 0.01  # the confident class-1 logits are now all false positives
    total.backward()
    assert raw[0][0].grad is not None and raw[0][0].grad.abs().sum() == 0
    assert raw[0][1].grad.abs().sum() > 0


@pytest.mark.parametrize(("bins", "classification"), [(16, "bce"), (17, "varifocal"), (1, "varifocal"), (8, "focal")])
def test_gradient_descent_on_raw_outputs_reaches_the_target(bins, classification):
    torch.manual_seed(0)
    level = (torch.randn(2, 4 * bins, GRID, GRID) * 0.1 + (2.0 if bins == 1 else 0.0)).requires_grad_(True)
    cls = torch.full((2, NC, GRID, GRID), -4.0).requires_grad_(True)
    t = torch.tensor([[0.0, 1.0, *GT], [1.0, 2.0, 4.0, 8.0, 30.0, 60.0], [1.0, 0.0, 36.0, 4.0, 60.0, 28.0]])
    loss = DetectionLoss(NC, bins, strides=(STRIDE,), classification=classification)
    opt = torch.optim.Adam([level, cls], lr=0.05)
    first = None
    for _ in range(150):
        total, parts = loss([(level, cls)], t)
        first = first or parts
        opt.zero_grad()
        total.backward()
        opt.step()
    assert math.isfinite(float(total.detach()))
    assert parts["box"] < 0.2 * first["box"]
    assert parts["cls"] < first["cls"]
    with torch.no_grad():
        _, _, assigned = loss.compute([(level, cls)], t)
        prob = cls.sigmoid().flatten(2).transpose(1, 2)  # [B, N, nc]
    fg = assigned.foreground
    assert fg.sum() >= 3  # every gt has positives
    assert assigned.scores[fg].amax(-1).median() > 0.8  # the boxes are good: high-IoU quality targets
    learned = prob[fg].gather(1, assigned.labels[fg][:, None]).squeeze(1)
    assert learned.mean() > 0.5  # positives score their class...
    assert prob[~fg].mean() < 0.05  # ...background scores nothing
    if bins > 1:
        assert parts["dfl"] < 0.5 * first["dfl"]
    else:
        assert parts["dfl"] == 0.0


def test_total_is_the_batch_scaled_sum_of_the_components():
    torch.manual_seed(1)
    raw = [(torch.randn(3, 4 * 16, GRID, GRID), torch.randn(3, NC, GRID, GRID))]
    t = torch.tensor([[0.0, 1.0, *GT], [2.0, 0.0, 0.0, 0.0, 30.0, 30.0]])
    total, parts = DetectionLoss(NC, 16, strides=(STRIDE,))(raw, t)
    assert math.isclose(float(total), 3 * sum(parts.values()), rel_tol=1e-5)
    assert set(parts) == {"box", "cls", "dfl"}


def test_pad_targets_groups_boxes_by_image():
    t = torch.tensor([[2.0, 1.0, 0, 0, 4, 4], [0.0, 2.0, 1, 1, 5, 5], [2.0, 0.0, 2, 2, 6, 6]])
    labels, boxes, mask = pad_targets(t, 4)
    assert labels.shape == (4, 2) and boxes.shape == (4, 2, 4)
    assert mask.tolist() == [[True, False], [False, False], [True, True], [False, False]]
    assert labels[2].tolist() == [1, 0] and boxes[2, 1].tolist() == [2, 2, 6, 6]
    assert labels[0, 0] == 2
    with pytest.raises(ValueError, match="batch indices"):
        pad_targets(t, 2)
    with pytest.raises(ValueError, match=r"\[M, 6\]"):
        pad_targets(torch.zeros(3, 5), 1)


def test_real_model_output_and_channel_mismatch(tiny_space_path):
    torch.manual_seed(0)
    model = build_model(load_space(tiny_space_path).sample(3))
    loss = DetectionLoss.for_model(model)
    assert loss.bins == model.bins and loss.nc == model.nc
    raw = model(torch.rand(2, 3, 64, 64))
    total, parts = loss(raw, torch.tensor([[0.0, 1.0, 8, 8, 40, 50], [1.0, 3.0, 30, 2, 62, 20]]))
    total.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(v > 0 for v in parts.values())
    with pytest.raises(ValueError, match="bins"):
        DetectionLoss(model.nc, model.bins + 1)(raw, torch.zeros(0, 6))
    with pytest.raises(ValueError, match="out of range"):
        loss(raw, torch.tensor([[0.0, float(model.nc), 8, 8, 40, 50]]))


def test_short_loop_is_deterministic_and_lowers_the_loss(tiny_space_path):
    arch = load_space(tiny_space_path).sample(0)
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(
        [[0.0, 1.0, 8, 8, 40, 50], [1.0, 3.0, 30, 2, 62, 20], [2.0, 0.0, 4, 30, 28, 60], [3.0, 2.0, 16, 16, 48, 48]]
    )
    loader = [(images[:2], t[:2]), (images[2:], t[2:] - torch.tensor([2.0, 0, 0, 0, 0, 0]))]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(arch)
        runs.append(train_steps(model, loader, steps=30, lr=5e-3, seed=0, warmup=5))
    assert runs[0].losses == runs[1].losses  # bit-identical on CPU with the same seeds
    h = runs[0]
    assert h.steps == 30 and h.images == 60
    assert sum(h.losses[-5:]) / 5 < 0.6 * sum(h.losses[:5]) / 5
    assert h.lrs[0] < h.lrs[4] and h.lrs[-1] < h.lrs[5]  # warm-up, then decay
    with pytest.raises(ValueError, match="exactly one"):
        train_steps(model, loader, steps=3, epochs=1.0)


def test_lr_schedule_shape():
    values = [lr_factor(s, 100, 10, 0.05) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.05)
    assert all(a >= b for a, b in itertools.pairwise(values[9:]))


def test_non_finite_loss_stops_training(tiny_space_path):
    model = build_model(load_space(tiny_space_path).sample(0))
    bad = [(torch.full((1, 3, 64, 64), float("nan")), torch.tensor([[0.0, 1.0, 8, 8, 40, 50]]))]
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_steps(model, bad, steps=2)


@pytest.mark.parametrize(("preset", "bins"), [("yolov8n", 16), ("yolo_nas_s", 17), ("yolov6m", 17), ("yolov6n", 1)])
def test_every_head_of_the_block_library(preset, bins):
    """v8 (16 DFL bins), YOLO-NAS and YOLOv6-M (17), YOLOv6-N (direct distances, no DFL term)."""
    torch.manual_seed(0)
    model = build_model(load_arch(preset).with_overrides(nc=3))
    assert model.bins == bins
    loss = DetectionLoss.for_model(model)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([[0.0, 1.0, 4, 4, 40, 50], [1.0, 2.0, 30, 10, 60, 34]])
    total, parts = loss(model(images), t)
    total.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert (parts["dfl"] == 0.0) == (bins == 1)
    if bins == 1:  # direct regression trains: the box loss falls on a fixed batch
        history = train_steps(model, [(images, t)], steps=15, lr=2e-3, warmup=2)
        assert history.parts[-1]["box"] < 0.7 * history.parts[0]["box"]
