"""`pareto.png`: the front at the top fidelity (and, with promotion, the screening of every trial)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nasearch import atomic

if TYPE_CHECKING:
    from nasearch.search.results import FrontEntry, Results


def _xy(entries: list[FrontEntry]) -> tuple[list[float], list[float]]:
    """Where entries stand on the plot: latency across, accuracy up."""
    return [e.latency_ms for e in entries], [e.accuracy for e in entries]


def _latency_label(entries: list[FrontEntry], method: str) -> str:
    measured = {e.latency_measured for e in entries}
    kind = "measured" if measured == {True} else "predicted" if measured == {False} else "measured/predicted"
    return f"latency (ms, {kind}{', ' + method if method else ''})"


def _presets(ax, entries: list[FrontEntry]) -> None:
    for e in entries:
        if e.preset:
            ax.scatter(
                *_xy([e]),
                marker="*",
                s=260,
                facecolors="none",
                zorder=5,
                edgecolors="tab:red",
                linewidths=1.2,
            )
            ax.annotate(
                e.preset,
                (e.latency_ms, e.accuracy),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=8,
                color="tab:red",
            )


def plot_front(res: Results, out: Path) -> Path:
    """Write the front plot to `out` (atomically)."""
    from nasearch.plotting import pyplot

    plt = pyplot()
    fig = draw_front(res)
    try:
        with atomic.staged(out) as tmp:
            fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out


def draw_front(res: Results):
    """The figure: the front at the top rung, presets and suite marked; screening beside it if promoted."""
    from nasearch.plotting import pyplot

    plt = pyplot()

    from nasearch.search.results import candidates_at

    screen = candidates_at(res.rows, 0)
    two = res.rung is not None and res.rung > 0
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(13 if two else 7.5, 5.2), squeeze=False)
    ax = axes[0][0]
    method = next((r["latency_method"] for r in res.rows if r.get("latency_method")), "")
    pool = res.pool
    if pool:
        ax.scatter(
            *_xy(pool),
            s=14,
            color="0.65",
            label=f"trials at rung {res.rung} ({len(pool)})",
        )
        ax.step(*_xy(res.front), where="post", color="tab:blue", lw=1.5)
        ax.scatter(
            *_xy(res.front),
            s=36,
            color="tab:blue",
            zorder=4,
            label=f"Pareto front ({len(res.front)})",
        )
        _presets(ax, pool)
        for rank, (e, target) in enumerate(res.suite, 1):
            ax.axvline(target, color="tab:green", ls="--", lw=0.9)
            ax.annotate(
                f"suite {rank}: {e.arch_name}",
                (target, e.accuracy),
                textcoords="offset points",
                xytext=(4, 6),
                fontsize=8,
                color="tab:green",
                rotation=0,
            )
        ax.set_xlabel(_latency_label(pool, method))
        ax.set_ylabel(pool[0].accuracy_kind or "accuracy")
    infeasible = [r for r in res.rows if r["state"] == "complete" and r["feasible"] is False]
    limit = res.meta.get("constraints", {}).get("latency_ms")
    if limit:
        ax.axvline(limit, color="tab:red", lw=0.8, alpha=0.6, label=f"latency limit {limit:g} ms")
    ax.set_title(f"{res.meta.get('experiment', {}).get('name', 'search')}: front at rung {res.rung}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if two:
        ax2 = axes[0][1]
        promoted = [
            e
            for e in screen
            if any(d.get("rung", 0) > 0 for r in res.rows if r["trial"] == e.trial for d in r["_rungs"])
        ]
        ax2.scatter(
            *_xy(screen),
            s=12,
            color="0.65",
            label=f"screened ({len(screen)})",
        )
        ax2.scatter(
            *_xy(promoted),
            s=22,
            color="tab:orange",
            label=f"promoted ({len(promoted)})",
        )
        xs = [r["screen_latency_ms"] for r in infeasible if r["screen_latency_ms"] is not None]
        ys = [r["screen_accuracy"] for r in infeasible if r["screen_accuracy"] is not None]
        if xs and len(xs) == len(ys):
            ax2.scatter(xs, ys, marker="x", s=14, color="tab:red", label=f"infeasible ({len(xs)})")
        _presets(ax2, screen)
        ax2.set_xlabel(_latency_label(screen, method) if screen else "latency (ms)")
        ax2.set_ylabel(screen[0].accuracy_kind if screen else "screening score")
        ax2.set_title("screening (rung 0) of every trial")
        ax2.grid(alpha=0.3)
        ax2.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
