"""The Optuna bridge: decisions become trial parameters, presets replay exactly, rejected proposals are
repaired into feasible ones near them."""

from __future__ import annotations

import optuna

from nasearch.search.chooser import OptunaChooser, repair
from nasearch.space import load_arch, load_space
from nasearch.space.decisions import ReplayChooser
from nasearch.space.space import decision_values
from tests.conftest import SPACES

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_enqueued_preset_replays_to_the_same_architecture() -> None:
    space = load_space(SPACES / "yolov8_space.yaml")
    study = optuna.create_study(directions=["minimize", "maximize"])
    for name in ("yolov8n", "yolov8m"):
        study.enqueue_trial(decision_values(space, load_arch(name)))
    for name in ("yolov8n", "yolov8m"):
        trial = study.ask()
        arch = space.to_arch(space.resolve(OptunaChooser(trial)))
        assert arch.hash == load_arch(name).hash
        assert space.to_arch(space.resolve(ReplayChooser(trial.params))).hash == arch.hash


def test_trial_parameters_are_the_space_decisions_on_their_grids() -> None:
    space = load_space(SPACES / "tiny_space.yaml")
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(0))
    seen_branch = set()
    for _ in range(30):
        trial = study.ask()
        data = space.resolve(OptunaChooser(trial))
        branch = trial.params["backbone.stages[2]"]
        seen_branch.add(branch)
        conditional = "backbone.stages[2]|1.e"
        assert (conditional in trial.params) == (branch == "1")
        if conditional in trial.params:
            assert trial.params[conditional] in (0.25, 0.5)
            assert data["backbone"]["stages"][2]["e"] == trial.params[conditional]
        study.tell(trial, [1.0, 1.0])
    assert seen_branch == {"0", "1"}


def test_repair_makes_a_rejected_proposal_feasible_and_keeps_most_of_it() -> None:
    space = load_space(SPACES / "yolov8_space.yaml")
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(1))
    rejected = 0
    for _ in range(40):
        trial = study.ask()
        data = space.resolve(OptunaChooser(trial))
        study.tell(trial, [1.0, 1.0])
        if not space.violations(data):
            continue
        rejected += 1
        fixed = repair(space, dict(trial.params), seed=trial.number)
        assert fixed is not None and fixed == repair(space, dict(trial.params), seed=trial.number)
        repaired = space.resolve(ReplayChooser(fixed))
        assert not space.violations(repaired)
        kept = sum(fixed.get(k) == v for k, v in trial.params.items())
        assert kept >= len(trial.params) // 2, (kept, len(trial.params))
    assert rejected >= 10  # about two thirds of uniform proposals break the yolov8 space's rules
