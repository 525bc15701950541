"""The bridge from the space's define-by-run decisions to an Optuna trial's `suggest_*` calls.

Decision names are the space's stable paths, so a trial's parameters replay exactly (`ReplayChooser`)
and a preset's decisions (`decision_values`) can be enqueued as a trial. Categorical answers are the
option labels, integers and floats their values, each on the grid the space defines.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nasearch.space import Space


class OptunaChooser:
    """Answers each decision by asking the trial (an `optuna.Trial`)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        return labels.index(self.trial.suggest_categorical(name, labels))

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        return int(self.trial.suggest_int(name, low, high, step=step))

    def real(self, name: str, low: float, high: float, step: float) -> float:
        return round(float(self.trial.suggest_float(name, low, high, step=step)), 10)


class RepairChooser:
    """Answers near a proposal: each decision keeps the proposed answer with probability `keep`, else a
    random one; records every answer in the proposal's format (labels, ints, floats)."""

    def __init__(self, proposal: dict[str, Any], rng: random.Random, keep: float) -> None:
        self.proposal, self.rng, self.keep = proposal, rng, keep
        self.answers: dict[str, Any] = {}

    def _kept(self, name: str) -> Any:
        return self.proposal.get(name) if self.rng.random() < self.keep else None

    def choose(self, name: str, labels: list[str], weights: list[int]) -> int:
        want = self._kept(name)
        idx = labels.index(want) if want in labels else self.rng.randrange(len(labels))
        self.answers[name] = labels[idx]
        return idx

    def integer(self, name: str, low: int, high: int, step: int) -> int:
        want = self._kept(name)
        ok = isinstance(want, int) and low <= want <= high and (want - low) % step == 0
        value = int(want) if ok else self.rng.randrange(low, high + 1, step)
        self.answers[name] = value
        return value

    def real(self, name: str, low: float, high: float, step: float) -> float:
        n = math.floor((high - low) / step + 1e-9)
        want = self._kept(name)
        ok = isinstance(want, int | float) and low - 1e-9 <= want <= high + 1e-9
        value = round(float(want), 10) if ok else round(low + self.rng.randint(0, n) * step, 10)
        self.answers[name] = value
        return value


def repair(space: Space, proposal: dict[str, Any], seed: int, tries: int = 400) -> dict[str, Any] | None:
    """Decisions of a resolution that satisfies the space's constraints, as close to `proposal` as random
    repair finds (most decisions kept first, then fewer): what a sampler's rejected proposal becomes, so
    samplers that cannot learn from rejections (GP, NSGA-II) still make progress near where they aimed."""
    rng = random.Random(seed)
    for keep in (0.9, 0.75, 0.5, 0.0):
        for _ in range(tries // 4):
            chooser = RepairChooser(proposal, rng, keep)
            if not space.violations(space.resolve(chooser)):
                return chooser.answers
    return None
