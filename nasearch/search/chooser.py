"""The bridge from the space's define-by-run decisions to an Optuna trial's `suggest_*` calls.

Decision names are the space's stable paths, so a trial's parameters replay exactly (`ReplayChooser`)
and a preset's decisions (`decision_values`) can be enqueued as a trial. Categorical answers are the
option labels, integers and floats their values, each on the grid the space defines.
"""

from __future__ import annotations

from typing import Any


class OptunaChooser:
    """Answers each decision by asking the trial (works on `optuna.Trial` and Ray Tune's wrapper)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        return labels.index(self.trial.suggest_categorical(name, labels))

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return int(self.trial.suggest_int(name, low, high, step=step))

    def real(self, name: str, low: float, high: float, step: float) -> float:
        return round(float(self.trial.suggest_float(name, low, high, step=step)), 10)
