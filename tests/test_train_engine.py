"""The one training engine: the full, short and QAT recipes all run through `Engine`; bad optimizers are input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic, load_split
from nasearch.errors import InputError
from nasearch.quant.qat import finetune, qat_recipe
from nasearch.space import build_model, load_space
from nasearch.train.engine import Engine, Recipe, build_optimizer
from nasearch.train.short import lr_factor, short_recipe, train_steps
from nasearch.train.trainer import TrainConfig, prepare_run
from nasearch.validation import validate_model


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return ensure_synthetic(tmp_path_factory.mktemp("synth") / "d", images=12, imgsz=64, seed=1)


@pytest.fixture()
def model(tiny_space_path):
    torch.manual_seed(0)
    return build_model(load_space(tiny_space_path).sample(0).with_overrides(nc=3))


class Stop(Exception):
    pass


@pytest.fixture()
def engine_calls(monkeypatch):
    """Records every engine the recipes create and stops training at its first `run`."""
    made: list[tuple[Recipe, Engine]] = []
    create = Engine.create.__func__

    def spy_create(cls, model, recipe, loss, batch, total_iters, device=None):
        engine = create(cls, model, recipe, loss, batch, total_iters, device)
        made.append((recipe, engine))
        return engine

    def stop(self, batches, iteration):
        raise Stop

    monkeypatch.setattr(Engine, "create", classmethod(spy_create))
    monkeypatch.setattr(Engine, "run", stop)
    return made


def test_the_full_recipe_is_the_train_config(engine_calls, data, tiny_space_path, tmp_path):
    arch = load_space(tiny_space_path).sample(0)
    config = TrainConfig(
        epochs=5,
        imgsz=64,
        batch=4,
        workers=0,
        optimizer="adamw",
        lr0=0.002,
        schedule="linear",
        min_warmup_iters=2,
        ema_decay=0.99,
    )
    with pytest.raises(Stop):
        prepare_run(arch, str(data), tmp_path / "run", config).fit()
    ((recipe, engine),) = engine_calls
    iters = engine.schedule.total_iters // 5  # batches per epoch
    assert iters >= 2 and engine.schedule.total_iters == 5 * iters
    assert recipe == config.recipe(iters)
    assert (recipe.optimizer, recipe.lr0, recipe.schedule, recipe.nbs, recipe.ema_decay) == (
        "adamw",
        0.002,
        "linear",
        64,
        0.99,
    )
    assert isinstance(engine.optimizer, torch.optim.AdamW) and engine.accumulate == 16
    assert engine.optimizer.param_groups[0]["weight_decay"] == pytest.approx(5e-4 * 4 * 16 / 64)
    assert engine.ema is not None and not engine.amp  # AMP only on CUDA
    assert not engine.schedule.decay_after_warmup and engine.schedule.warmup_bias_lr == config.warmup_bias_lr


def test_the_short_recipe_goes_through_the_engine(engine_calls, model):
    images = torch.rand(2, 3, 64, 64)
    with pytest.raises(Stop):
        train_steps(model, [(images, torch.tensor([[0.0, 1.0, 8, 8, 40, 50]]))], steps=20, lr=5e-3, warmup=4)
    ((recipe, engine),) = engine_calls
    assert recipe == short_recipe(20, lr=5e-3, warmup=4)
    assert (recipe.optimizer, recipe.nbs, recipe.ema_decay, recipe.amp) == ("adamw", None, None, False)
    assert isinstance(engine.optimizer, torch.optim.AdamW) and engine.accumulate == 1 and engine.ema is None
    assert engine.schedule.decay_after_warmup
    # the short schedule: warm-up to lr over 4 steps, then cosine to 5% of it at the last step
    assert [engine.schedule.lr(s, 2) for s in (0, 3)] == [5e-3 / 4, 5e-3]
    assert engine.schedule.lr(19, 0) == pytest.approx(5e-3 * 0.05)
    assert lr_factor(0, 20, 4, 0.05) == 0.25 and lr_factor(19, 20, 4, 0.05) == pytest.approx(0.05)


def test_the_qat_recipe_goes_through_the_engine(engine_calls, model, data):
    split = load_split(data, "train")
    with pytest.raises(Stop):
        finetune(model, split, 64, epochs=2, batch=4, lr=0.01)
    ((recipe, engine),) = engine_calls
    total = 2 * math.ceil(len(split) / 4)
    assert recipe == qat_recipe(0.01, 4, total)
    assert (recipe.optimizer, recipe.momentum, recipe.warmup_iters, recipe.lrf, recipe.ema_decay) == (
        "sgd",
        0.9,
        0,
        0.01,
        0.999,
    )
    assert recipe.ema_tau == max(total / 16 / 10, 1.0)
    # the full recipe's weight decay, nominal batch and clipping: one source of those values
    full = Recipe()
    assert (recipe.weight_decay, recipe.nbs, recipe.grad_clip) == (full.weight_decay, full.nbs, full.grad_clip)
    assert isinstance(engine.optimizer, torch.optim.SGD) and engine.accumulate == 16 and engine.ema is not None


def test_engine_run_trains_and_averages_the_ema(model):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[0.0, 1.0, 8, 8, 40, 50], [1.0, 2.0, 30, 10, 60, 34]])
    from nasearch.train.loss import DetectionLoss

    criterion = DetectionLoss.for_model(model)

    def loss(raw, imgs, tgts):
        total, parts = criterion(raw, tgts)
        return total, torch.tensor([parts["box"], parts["cls"], parts["dfl"]])

    recipe = Recipe(lr0=0.01, warmup_iters=0, nbs=4, ema_decay=0.9, ema_tau=1.0)
    engine = Engine.create(model, recipe, loss, batch=2, total_iters=6)
    before = [p.detach().clone() for p in model.parameters()]
    steps: list[int] = []
    engine.on_step = lambda record: steps.append(record.iteration)
    means, iteration = engine.run([(images, targets)] * 3, 0)
    assert iteration == 3 and steps == [0, 1, 2] and set(means) == {"box", "cls", "dfl"}
    assert engine.ema is not None and engine.ema.updates == 2  # 2 batches per step: one step + the leftover
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_unknown_optimizer_is_an_input_error_everywhere(model, tmp_path, data):
    with pytest.raises(InputError, match="optimizer: expected one of sgd, adamw, found 'adam'"):
        build_optimizer(model, "adam", 0.01, 0.9, 0.0)
    with pytest.raises(InputError, match="optimizer"):
        train_steps(model, [(torch.rand(1, 3, 64, 64), torch.zeros(0, 6))], steps=1, optimizer="adam")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"cfg\.yaml: optimizer"):
        validate_model(TrainConfig, {"optimizer": "adam"}, "cfg.yaml")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("optimizer: lion\n")
    result = CliRunner().invoke(
        app, ["train", "yolov8n", "--data", str(data), "--cfg", str(cfg), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "optimizer" in result.stderr and "Traceback" not in result.output
