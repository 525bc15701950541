"""What every proxy returns, so the search can rank candidates by any of them the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProxyResult:
    """One proxy evaluation of one architecture.

    `value` is the score itself; `higher_is_better` says which way it ranks (every proxy here is
    higher-is-better, the field exists so callers never have to guess). `kind` names the unit
    (e.g. "log_synflow", "map50_95"); `seconds` is the wall time of the evaluation, model build included.
    """

    value: float
    kind: str
    higher_is_better: bool = True
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "kind": self.kind,
            "higher_is_better": self.higher_is_better,
            "seconds": round(self.seconds, 4),
            "details": self.details,
        }
