"""The trainer's parts: schedule, EMA, parameter groups, DDP sharding, checkpoints, distillation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasearch.errors import InputError
from nasearch.space import build_model, load_space
from nasearch.train.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from nasearch.train.distill import Distiller
from nasearch.train.ema import ModelEMA
from nasearch.train.engine import build_optimizer, param_groups
from nasearch.train.schedule import BIAS_GROUP, Schedule, warmup_iterations
from nasearch.train.trainer import ShardedSampler

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def tiny_arch(tiny_space_path):
    return load_space(tiny_space_path).sample(0)


def test_schedule_warms_up_then_decays_to_lrf():
    s = Schedule(lr0=0.01, lrf=0.01, total_iters=1000, warmup_iters=100, kind="cosine", warmup_bias_lr=0.1)
    assert s.lr(0, 0) == 0.0 and s.lr(0, BIAS_GROUP) == pytest.approx(0.1)
    # during warm-up the bias lr falls and the weight lr rises towards the decayed target
    assert s.lr(50, BIAS_GROUP) < 0.1 and 0 < s.lr(50, 0) < 0.01
    assert s.lr(100, 0) == s.lr(100, BIAS_GROUP) == pytest.approx(0.01 * s.decay(100))
    assert s.lr(999, 0) == pytest.approx(0.01 * 0.01)
    assert s.beta(0) == pytest.approx(0.8) and s.beta(100) == pytest.approx(0.937)
    lin = Schedule(lr0=0.01, lrf=0.1, total_iters=11, warmup_iters=0, kind="linear")
    assert [round(lin.lr(i, 0), 6) for i in (0, 5, 10)] == [0.01, 0.0055, 0.001]
    # cosine is flat at both ends, linear is not
    assert s.decay(1) - s.decay(2) < lin.decay(1) - lin.decay(2)


def test_warmup_length_bounds():
    assert warmup_iterations(3, 10, 1000) == 100  # at least 100 iterations
    assert warmup_iterations(3, 10, 60) == 30  # never more than half the run
    assert warmup_iterations(0, 10, 1000) == 0


def test_schedule_applies_to_sgd_and_adamw_groups():
    p = [nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    groups = [{"params": [q]} for q in p]
    s = Schedule(lr0=0.01, lrf=0.01, total_iters=100, warmup_iters=10)
    for opt in (torch.optim.SGD(groups, lr=1, momentum=0.5), torch.optim.AdamW([{"params": [q]} for q in p], lr=1)):
        s.apply(opt, 5)
        assert [g["lr"] for g in opt.param_groups] == [s.lr(5, i) for i in range(3)]
        beta = opt.param_groups[0].get("momentum", opt.param_groups[0].get("betas", (None,))[0])
        assert beta == pytest.approx(s.beta(5))


def test_ema_ramps_its_decay_and_averages():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay 0.9 * (1 - e^-1) = 0.5689
    d = 0.9 * (1 - math.exp(-1))
    assert float(ema.model.weight) == pytest.approx(1 - d)
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_param_groups_exclude_norms_and_biases_from_decay(tiny_arch):
    model = build_model(tiny_arch)
    decay, no_decay, biases = param_groups(model)
    total = sum(1 for _ in model.parameters())
    assert len(decay) + len(no_decay) + len(biases) == total
    bn_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert bn_weights and bn_weights <= {id(p) for p in no_decay}
    assert all(p.ndim == 4 for p in decay)
    assert all(p.ndim == 1 for p in biases) and len(biases) >= 3  # at least the head's output convs
    opt = build_optimizer(model, "sgd", 0.01, 0.937, 5e-4)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0, 0.0]
    assert opt.param_groups[0]["nesterov"] is True


def test_sharded_sampler_splits_each_epoch_between_ranks():
    keys = [list(ShardedSampler(10, True, 3, True, rank, 3)) for rank in range(3)]
    indices = [k.index for ks in keys for k in ks]
    assert sorted(indices) == list(range(10))  # every image once per epoch, over all ranks
    assert [len(ks) for ks in keys] == [len(ShardedSampler(10, True, 3, True, r, 3)) for r in range(3)] == [4, 3, 3]
    again = [k.index for k in ShardedSampler(10, True, 3, True, 0, 3)]
    assert again == [k.index for k in keys[0]]  # same seed and epoch, same shard


def test_checkpoint_round_trip_and_weights_only(tmp_path, tiny_arch):
    model = build_model(tiny_arch)
    path = save_checkpoint({"arch": tiny_arch.data, "model": model.state_dict(), "epoch": 3}, tmp_path / "a.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "nasearch-checkpoint" and raw["epoch"] == 3
    loaded, arch, _ = load_checkpoint(path)
    assert arch.hash == tiny_arch.hash and not loaded.training
    for (k, v), w in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


@pytest.mark.parametrize(
    "content, found",
    [
        (b"not a checkpoint at all", "corrupt or foreign data"),
        (None, "unsafe unpickling"),
        (b"", "EOFError"),
    ],
)
def test_corrupt_checkpoints_are_input_errors(tmp_path, content, found):
    path = tmp_path / "bad.pt"
    if content is None:  # a pickled module, which weights_only refuses
        torch.save(nn.Linear(1, 1), path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_checkpoint(path)
    assert found in err.value.line() and str(path) in err.value.line()


def test_checkpoint_with_weights_of_another_architecture(tmp_path, tiny_space_path, tiny_arch):
    other = load_space(tiny_space_path).sample(5)
    assert other.hash != tiny_arch.hash
    path = save_checkpoint({"arch": tiny_arch.data, "model": build_model(other).state_dict()}, tmp_path / "x.pt")
    with pytest.raises(InputError) as err:
        load_checkpoint(path)
    assert err.value.path == "model" and "fit the architecture" in err.value.expected
    broken = save_checkpoint({"arch": {**tiny_arch.data, "imgsz": 33}, "model": {}}, tmp_path / "y.pt")
    with pytest.raises(InputError) as err:
        load_checkpoint(broken)
    assert err.value.path.startswith("arch")


def test_distillation_pulls_the_student_towards_the_teacher(tiny_arch):
    torch.manual_seed(0)
    teacher = build_model(tiny_arch).eval()
    student = build_model(tiny_arch).train()
    distiller = Distiller(teacher, weight=1.0)
    x = torch.rand(2, 3, 64, 64)

    def gap() -> float:
        with torch.no_grad():
            s = student.forward_raw(x)
            t = teacher.forward_raw(x)
        return sum(float((a[1].sigmoid() - b[1].sigmoid()).abs().mean()) for a, b in zip(s, t, strict=True))

    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    before = gap()
    losses = []
    for _ in range(15):
        loss = distiller.loss(x, student(x), student.bins)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert gap() < 0.5 * before
