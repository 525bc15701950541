"""A surrogate-assisted sampler: whole architectures chosen by the hypervolume they are predicted to add.

TPE and GP model each decision of the space; here the decisions are many and conditional, but two numbers that
cost no objective evaluation — the candidate's parameter count and the elements its activation layers output in
one forward pass — predict both the measured latency and a zero-cost score (a NASWOT kernel is built from the
activation layers' units). Each trial after the start-up draws `candidates` random architectures of the space,
predicts every objective from the two numbers (a quadratic ridge fit in their logarithms on the complete trials
so far, refitted every trial), shifts each prediction by `optimism` times the fit's residual spread in the
objective's good direction, and proposes the candidate whose optimistic prediction adds the most hypervolume to
the feasible front so far (two objectives; ties go to the candidate predicted best on the sum of standardised
objectives). A search whose suite names latency targets aims each proposal at one target in turn instead: the
pool adds mutations of the most accurate trials at or under that target (the fastest, while none is), and the
proposal is the candidate of best optimistic accuracy among those predicted at or under it (the fastest predicted,
while none is) — the suite delivers the best model per target, and random draws rarely reach a space's small end.
A decision set already in the study — finished, or running in another worker — is never proposed
again, so parallel workers do not spend trials on the same candidate. The proposal is handed to Optuna decision
by decision (`sample_independent`), so studies, storages and resumption work as with any sampler. Sizing a
candidate builds its model without initialising it and runs one forward pass; it never measures or scores it,
so the trial budget counts what the other samplers' does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasearch.search.suite import hypervolume

Draw = Callable[[random.Random], dict[str, Any] | None]  # one random valid decision set, or None
Size = Callable[[dict[str, Any]], tuple[float, float] | None]  # decisions -> (params, activations), or None
Mutate = Callable[[dict[str, Any], random.Random], dict[str, Any] | None]  # a valid decision set near the given one

DEFAULT_STARTUP = 10
DEFAULT_CANDIDATES = 64
DEFAULT_OPTIMISM = 0.5
RIDGE = 1e-3
# Activations are counted at no more than this resolution: at sides that are multiples of the largest stride,
# every feature map scales with the image, so counts at 128 px are those at 640 px over 25 and the fit (in
# logarithms, standardised) proposes the same candidates, while sizing a large model stays cheap.
SIZING_IMGSZ = 128
PARENTS = 4  # trials mutated per proposal aimed at a latency target
MUTATION_KEEP = 0.85  # each decision of a parent is kept with this probability


def design(sizes: np.ndarray) -> np.ndarray:
    """Quadratic features of the logarithms of the two sizes, without the constant: [p, a, p², a², p·a]."""
    p, a = np.log(np.maximum(sizes[:, 0], 1e-12)), np.log(np.maximum(sizes[:, 1], 1e-12))
    return np.column_stack([p, a, p * p, a * a, p * a])


def fit_predict(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge least squares on standardised features plus an intercept: predictions and residual spread."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-12
    z = np.column_stack([np.ones(len(x)), (x - mu) / sd])
    z_new = np.column_stack([np.ones(len(x_new)), (x_new - mu) / sd])
    penalty = RIDGE * len(y) * np.eye(z.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    coef = np.linalg.solve(z.T @ z + penalty, z.T @ y)
    return z_new @ coef, float(np.std(y - z @ coef))


def admits(dist: BaseDistribution, value: Any) -> bool:
    """Whether a proposed value is one of the distribution's own (the same space asks the same questions)."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(dist, IntDistribution | FloatDistribution):
        if not isinstance(value, int | float) or not dist.low <= value <= dist.high:
            return False
        return dist.step is None or abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-6
    return False


class SurrogateSampler(optuna.samplers.BaseSampler):
    """Proposes the random candidate predicted to add the most hypervolume (see the module docstring).

    `draw` gives a random valid decision set of the space; `size` gives a decision set's (params, activations);
    `limits` optionally bounds each objective (a latency limit): the hypervolume's reference point there.
    `targets` (first objective, e.g. the suite's latency targets) with `mutate` aims each proposal at one target.
    """

    def __init__(
        self,
        draw: Draw,
        size: Size,
        seed: int | None = None,
        n_startup_trials: int = DEFAULT_STARTUP,
        candidates: int = DEFAULT_CANDIDATES,
        optimism: float = DEFAULT_OPTIMISM,
        limits: Sequence[float | None] | None = None,
        targets: Sequence[float] | None = None,
        mutate: Mutate | None = None,
    ) -> None:
        self.draw, self.size, self.mutate = draw, size, mutate
        self.targets = sorted(targets) if targets else []
        self.n_startup_trials, self.candidates, self.optimism = n_startup_trials, candidates, optimism
        self.limits = list(limits) if limits is not None else None
        self._rng = random.Random(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._sizes: dict[tuple, tuple[float, float] | None] = {}
        self._proposals: dict[int, dict[str, Any]] = {}

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.params:  # an enqueued trial (a preset, a repair) keeps its own decisions
            return
        proposal = self.propose(study, trial.number)
        if proposal is not None:
            self._proposals[trial.number] = proposal

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        proposal = self._proposals.get(trial.number, {})
        if param_name in proposal and admits(param_distribution, proposal[param_name]):
            return proposal[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._proposals.pop(trial.number, None)

    # -- the proposal -------------------------------------------------------------------------------------
    @staticmethod
    def key(params: dict[str, Any]) -> tuple:
        return tuple(sorted((k, repr(v)) for k, v in params.items()))

    def sized(self, params: dict[str, Any]) -> tuple[float, float] | None:
        key = self.key(params)
        if key not in self._sizes:
            try:
                self._sizes[key] = self.size(params)
            except Exception:  # a candidate that cannot be built is simply not proposed
                self._sizes[key] = None
        return self._sizes[key]

    def propose(self, study: optuna.Study, number: int = 0) -> dict[str, Any] | None:
        """The candidate to evaluate next (for trial `number`), or None (start-up, or too little history)."""
        if len(study.directions) != 2:
            return None
        trials = study.get_trials(deepcopy=False)  # one storage read: the fit's history and the taken decisions
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
        if len(done) < self.n_startup_trials:
            return None
        rows = [(self.sized(t.params), t) for t in done]
        rows = [(s, t) for s, t in rows if s is not None]
        if len(rows) < 3:
            return None
        signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        y = np.array([t.values for _, t in rows], dtype=float) * signs  # both minimised from here on
        x = design(np.array([s for s, _ in rows], dtype=float))
        # never a decision set already tried, being tried by another worker, or proposed in this process
        taken = {self.key(t.params) for t in trials if t.params}
        taken |= {self.key(p) for p in self._proposals.values()}
        drawn = [c for c in (self.draw(self._rng) for _ in range(self.candidates)) if c is not None]
        target = self.targets[number % len(self.targets)] if self.targets else None
        if target is not None and self.mutate is not None:
            per_parent = max(self.candidates // (2 * PARENTS), 1)
            for parent in self.parents(rows, y, target):
                drawn += [m for _ in range(per_parent) if (m := self.mutate(parent, self._rng)) is not None]
        cands = [(c, s) for c in drawn if self.key(c) not in taken and (s := self.sized(c)) is not None]
        if not cands:
            return None
        x_new = design(np.array([s for _, s in cands], dtype=float))
        fits = [fit_predict(x, y[:, j], x_new) for j in range(2)]
        optimistic = np.column_stack([pred - self.optimism * spread for pred, spread in fits])
        if target is not None:
            under = np.flatnonzero(fits[0][0] <= target)
            best = int(under[np.argmin(optimistic[under, 1])]) if len(under) else int(np.argmin(fits[0][0]))
            return cands[best][0]
        feasible = np.array([all(v <= 0 for v in t.constraints.values()) for _, t in rows])
        ref = self.reference(y, feasible, signs)
        front = [(a, -b) for a, b in y[feasible]]  # suite.hypervolume: first minimised, second maximised
        base = hypervolume(front, (ref[0], -ref[1]))
        gains = [hypervolume([*front, (a, -b)], (ref[0], -ref[1])) - base for a, b in optimistic]
        scale = y.std(axis=0) + 1e-12
        tie = -(optimistic / scale).sum(axis=1)
        best = max(range(len(cands)), key=lambda i: (gains[i], tie[i]))
        return cands[best][0]

    @staticmethod
    def parents(rows: list[tuple[Any, FrozenTrial]], y: np.ndarray, target: float) -> list[dict[str, Any]]:
        """The most accurate trials at or under `target` (first objective), else the fastest: mutation parents."""
        under = np.flatnonzero(y[:, 0] <= target)
        order = under[np.argsort(y[under, 1], kind="stable")] if len(under) else np.argsort(y[:, 0], kind="stable")
        return [rows[i][1].params for i in order[:PARENTS]]

    def reference(self, y: np.ndarray, feasible: np.ndarray, signs: np.ndarray) -> np.ndarray:
        """Per minimised objective: its limit when given, else the worst feasible value + 10% of the range."""
        pool = y[feasible] if feasible.any() else y
        worst, best = pool.max(axis=0), pool.min(axis=0)
        ref = worst + 0.1 * (worst - best) + 1e-12
        for j, limit in enumerate(self.limits or []):
            if limit is not None:
                ref[j] = limit * signs[j]
        return ref


# -- the binding to a search space ---------------------------------------------------------------------------
def for_experiment(exp: Any, seed: int, n_startup_trials: int | None = None) -> SurrogateSampler:
    """The sampler for an experiment: candidates drawn from its space, sized at its scale and resolution,
    the latency limit as the hypervolume's bound."""
    from nasearch.nn.inspect import count_activations, count_params, uninitialized
    from nasearch.search.candidate import SearchContext
    from nasearch.search.chooser import RepairChooser
    from nasearch.space import build_model
    from nasearch.space.decisions import ReplayChooser

    ctx = SearchContext.create(exp)

    def draw(rng: random.Random) -> dict[str, Any] | None:
        chooser = RepairChooser({}, rng, keep=0.0)
        data = ctx.space.resolve(chooser)
        return None if ctx.space.violations(data) else chooser.answers

    def size(params: dict[str, Any]) -> tuple[float, float] | None:
        data = ctx.space.resolve(ReplayChooser(params))
        if ctx.space.violations(data):
            return None
        arch = ctx.architecture(data)
        model = uninitialized(lambda: build_model(arch))
        return float(count_params(model)), float(count_activations(model, min(ctx.imgsz, SIZING_IMGSZ)))

    def mutate(params: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
        chooser = RepairChooser(params, rng, keep=MUTATION_KEEP)
        data = ctx.space.resolve(chooser)
        return None if ctx.space.violations(data) else chooser.answers

    limit = exp.spec.constraints.latency_ms
    return SurrogateSampler(
        draw,
        size,
        seed=seed,
        n_startup_trials=DEFAULT_STARTUP if n_startup_trials is None else n_startup_trials,
        limits=[limit, None],
        targets=exp.spec.suite.latency_targets_ms,
        mutate=mutate,
    )
