"""Declarative cross-field constraints of a space; nothing is ever evaluated as code.

    constraints:
      - non_decreasing: backbone.stages.*.out
      - le: [backbone.stages.*.hidden, backbone.stages.*.out]
      - ge: [neck.up1.out, 64]

A path is dotted keys, list indices and `*` wildcards (dots only, so paths need no YAML quoting),
and may step into a branch's fields regardless of which option a choice took; where the chosen
branch lacks the field, the rule has nothing to check.
Pairwise rules align wildcards element by element; order rules compare consecutive matches.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasearch.errors import InputError, describe, did_you_mean
from nasearch.space import decisions as dec

PAIR_RULES: dict[str, Callable[[Any, Any], bool]] = {
    "le": operator.le,
    "lt": operator.lt,
    "ge": operator.ge,
    "gt": operator.gt,
    "eq": operator.eq,
    "ne": operator.ne,
}
ORDER_RULES: dict[str, Callable[[Any, Any], bool]] = {
    "non_decreasing": operator.le,
    "strictly_increasing": operator.lt,
    "non_increasing": operator.ge,
    "strictly_decreasing": operator.gt,
}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_path(text: str) -> list[str | int | None]:
    """'a.b.*.c.2' → ['a', 'b', None, 'c', 2] (None is the wildcard); ValueError if malformed."""
    out: list[str | int | None] = []
    for part in text.split("."):
        if part == "*":
            out.append(None)
        elif part.isdigit():
            out.append(int(part))
        elif _KEY.match(part):
            out.append(part)
        else:
            raise ValueError(part)
    return out


def select(tree: Any, path: list[str | int | None]) -> list[tuple[tuple[int, ...], Any]]:
    """Values at `path`, each with the indices its wildcards took; absent fields yield nothing."""
    found: list[tuple[tuple[int, ...], Any]] = [((), tree)]
    for seg in path:
        nxt = []
        for idx, node in found:
            if isinstance(seg, str):
                if isinstance(node, dict) and seg in node:
                    nxt.append((idx, node[seg]))
            elif isinstance(node, list):
                if seg is None:
                    nxt.extend(((*idx, i), v) for i, v in enumerate(node))
                elif seg < len(node):
                    nxt.append((idx, node[seg]))
        found = nxt
    return found


def _exists_in_space(tree: Any, path: list[str | int | None]) -> bool:
    """Whether some branch of the space has this path."""
    if not path:
        return True
    if dec.is_decision(tree):
        options = tree.get("choice", [])
        return any(_exists_in_space(o, path) for o in options)
    seg, rest = path[0], path[1:]
    if isinstance(seg, str):
        return isinstance(tree, dict) and seg in tree and _exists_in_space(tree[seg], rest)
    if isinstance(tree, list):
        items = tree if seg is None else tree[seg : seg + 1]
        return any(_exists_in_space(v, rest) for v in items)
    return False


@dataclass(frozen=True)
class Constraint:
    rule: str
    left: list | float
    right: list | float | None
    text: str

    def violations(self, arch: dict) -> list[str]:
        if self.rule in ORDER_RULES:
            cmp = ORDER_RULES[self.rule]
            vals = [v for _, v in select(arch, self.left)]  # type: ignore[arg-type]
            return [f"{self.text}: {a} then {b}" for a, b in itertools.pairwise(vals) if not cmp(a, b)]
        cmp = PAIR_RULES[self.rule]
        left = self._side(arch, self.left)
        right = self._side(arch, self.right)
        bad = []
        for li, lv in left:
            for ri, rv in right:
                aligned = li[: len(ri)] == ri[: len(li)]
                if aligned and not cmp(lv, rv):
                    bad.append(f"{self.text}: {lv} vs {rv}")
        return bad

    @staticmethod
    def _side(arch: dict, side: Any) -> list[tuple[tuple[int, ...], Any]]:
        if isinstance(side, list):
            return select(arch, side)
        return [((), side)]


def parse_constraints(raw: Any, space_tree: dict, file: str) -> list[Constraint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InputError(file, "constraints", "a list of rules", describe(raw))
    rules = list(PAIR_RULES) + list(ORDER_RULES)
    out = []
    for i, item in enumerate(raw):
        where = f"constraints[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise InputError(file, where, "a mapping with one rule (e.g. `le: [a.b, c.d]`)", describe(item))
        ((rule, args),) = item.items()
        if rule not in rules:
            raise InputError(
                file,
                f"{where}.{rule}",
                f"one of the rules {', '.join(rules)}",
                f"{rule!r}{did_you_mean(str(rule), rules)}",
            )
        if rule in ORDER_RULES:
            left = _operand(args, space_tree, file, f"{where}.{rule}", need_path=True)
            if sum(s is None for s in left) != 1:  # type: ignore[union-attr]
                raise InputError(file, f"{where}.{rule}", "a path with exactly one *", repr(args))
            out.append(Constraint(rule, left, None, f"{rule} {args}"))
            continue
        if not isinstance(args, list) or len(args) != 2:
            raise InputError(file, f"{where}.{rule}", "[left, right] (paths or numbers)", describe(args))
        left = _operand(args[0], space_tree, file, f"{where}.{rule}[0]")
        right = _operand(args[1], space_tree, file, f"{where}.{rule}[1]")
        if not isinstance(left, list) and not isinstance(right, list):
            raise InputError(file, f"{where}.{rule}", "at least one field path", describe(args))
        out.append(Constraint(rule, left, right, f"{rule} {args[0]} {args[1]}"))
    return out


def _operand(value: Any, space_tree: dict, file: str, where: str, need_path: bool = False) -> list | float:
    if isinstance(value, int | float) and not isinstance(value, bool) and not need_path:
        return value
    if not isinstance(value, str):
        raise InputError(file, where, "a field path" + ("" if need_path else " or a number"), describe(value))
    try:
        path = parse_path(value)
    except ValueError:
        raise InputError(file, where, "a path like backbone.stages.*.out", repr(value)) from None
    if not _exists_in_space(space_tree, path):
        raise InputError(file, where, "a path to a field of the space", f"{value!r}, which no branch has")
    return path
