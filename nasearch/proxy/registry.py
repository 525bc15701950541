"""Accuracy proxies by name, so the search (and `nasearch proxy score`) can call any of them.

Interface: `get(name).score(arch, imgsz=None, seed=0, nc=None, [data=...], **budget) -> ProxyResult`.
`imgsz` defaults to the architecture's, `nc` to its class count (short training uses the dataset's);
`data` is the dataset of proxies that train; every other keyword is a budget key of that proxy
(`Proxy.budget_keys`). All proxies are higher-is-better. This is the only proxy registry: the search
calls it by name too (`nasearch.search.objectives.score_accuracy`); `register` adds a proxy for both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from nasearch.errors import OPTION, InputError
from nasearch.proxy import zero_cost
from nasearch.proxy.result import ProxyResult
from nasearch.proxy.short_train import short_train_map
from nasearch.space import Architecture

FIXED_ARGS = frozenset({"arch", "imgsz", "seed", "nc", "data"})


class Proxy:
    """A registered proxy: its name, what its value means, and its scoring function."""

    def __init__(self, name: str, kind: str, score: Callable[..., ProxyResult], zero_cost: bool) -> None:
        self.name, self.kind, self.score, self.zero_cost = name, kind, score, zero_cost
        self.__doc__ = (score.__doc__ or name).strip().splitlines()[0]

    @property
    def description(self) -> str:
        return self.__doc__ or ""

    @property
    def needs_data(self) -> bool:
        return "data" in inspect.signature(self.score).parameters

    @property
    def budget_keys(self) -> dict[str, Any]:
        """Budget keyword → default value."""
        params = inspect.signature(self.score).parameters
        return {k: p.default for k, p in params.items() if k not in FIXED_ARGS}

    def __repr__(self) -> str:
        return f"Proxy({self.name!r})"


_PROXIES: dict[str, Proxy] = {
    "entropy": Proxy("entropy", "mae_det_entropy", zero_cost.entropy, True),
    "zen": Proxy("zen", "zen", zero_cost.zen, True),
    "naswot": Proxy("naswot", "naswot_logdet", zero_cost.naswot, True),
    "synflow": Proxy("synflow", "log_synflow", zero_cost.synflow, True),
    "params": Proxy("params", "params_m", zero_cost.params, True),
    "flops": Proxy("flops", "gflops", zero_cost.flops, True),
    "short_train": Proxy("short_train", "map50_95", short_train_map, False),
}
BUILTIN = frozenset(_PROXIES)


def register(proxy: Proxy) -> Proxy:
    """Add a proxy under its name (for the CLI and the search alike); a taken name is a programming error."""
    if proxy.name in _PROXIES:
        raise ValueError(f"a proxy named {proxy.name!r} is already registered")
    _PROXIES[proxy.name] = proxy
    return proxy


def unregister(name: str) -> None:
    """Remove a proxy added with `register` (the built-in ones stay)."""
    if name in BUILTIN:
        raise ValueError(f"{name!r} is a built-in proxy")
    _PROXIES.pop(name, None)


def names() -> list[str]:
    return list(_PROXIES)


def get(name: str) -> Proxy:
    if name not in _PROXIES:
        raise InputError(OPTION, "proxy", f"one of {', '.join(_PROXIES)}", repr(name))
    return _PROXIES[name]


def score(name: str, arch: Architecture, **kwargs: Any) -> ProxyResult:
    """Evaluate proxy `name` on `arch`; unknown budget keys are bad input, not a TypeError."""
    proxy = get(name)
    allowed = set(inspect.signature(proxy.score).parameters) - {"arch"}
    for key in kwargs:
        if key not in allowed:
            keys = ", ".join(proxy.budget_keys) or "none"
            raise InputError("--budget", key, f"a budget key of {name} ({keys})", f"unknown key {key!r}")
    return proxy.score(arch, **kwargs)
