"""`c3k2_stage`'s parameters (YOLO11's strided Conv then C3k2)."""

from __future__ import annotations

from nasearch.nn.fields import Act, Channels, Depth, Expansion
from nasearch.nn.registry import Params, declare


@declare("c3k2_stage", "stage")
class C3k2StageParams(Params):
    """`down` is the width of the stride-2 conv (default `out`): YOLO11's first two stages halve it."""

    out: Channels
    blocks: Depth
    down: Channels | None = None
    c3k: bool = False
    shortcut: bool = True
    e: Expansion = 0.5
    act: Act | None = None
