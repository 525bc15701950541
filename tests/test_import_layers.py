"""The package's import layers: the contracts in pyproject.toml (`[tool.importlinter]`) hold, and no two
sub-packages import each other, directly or round a longer loop. Imports inside functions count."""

from __future__ import annotations

import os
import subprocess
import sys

import grimp

from tests.conftest import ROOT

LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_hold() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"import contracts broken:\n{out.stdout}\n{out.stderr}"
    assert "0 broken" in out.stdout, out.stdout


def sub_package(module: str) -> str:
    """`nasearch.quant.ptq` -> `nasearch.quant`; a top-level module stands for itself."""
    return ".".join(module.split(".")[:2])


def package_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_cycle_finder_sees_a_loop() -> None:
    assert package_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert package_cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_sub_packages() -> None:
    graph = grimp.build_graph("nasearch", cache_dir=None)
    edges: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], str] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = sub_package(module), sub_package(imported)
            if a != b and a != "nasearch" and b != "nasearch":
                edges.setdefault(a, set()).add(b)
                lines.setdefault((a, b), f"{module} -> {imported}")
    cycles = package_cycles(edges)
    report = [
        f"{' <-> '.join(group)}: "
        + "; ".join(lines[(a, b)] for a in group for b in sorted(edges.get(a, ())) if b in group)
        for group in cycles
    ]
    assert not cycles, "sub-packages import each other:\n" + "\n".join(report)
