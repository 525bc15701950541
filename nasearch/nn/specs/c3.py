"""`c3_stage`'s parameters (YOLOv5's strided Conv then C3)."""

from __future__ import annotations

from nasearch.nn.fields import Act, Channels, Depth, Expansion
from nasearch.nn.registry import Params, declare


@declare("c3_stage", "stage")
class C3StageParams(Params):
    out: Channels
    blocks: Depth
    shortcut: bool = True
    e: Expansion = 0.5
    act: Act | None = None
