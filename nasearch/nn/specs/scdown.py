"""`scdown_stage`'s parameters (YOLOv10's P4/P5 stage: SCDown, then a C2f of bottlenecks or CIBs)."""

from __future__ import annotations

from nasearch.nn.fields import Act, C2fInner, Channels, Depth, Expansion
from nasearch.nn.registry import Params, declare


@declare("scdown_stage", "stage")
class SCDownStageParams(Params):
    """`block` chooses the C2f's inner block: YOLOv10 uses CIBs in its deeper stages at the larger scales."""

    out: Channels
    blocks: Depth
    block: C2fInner = "bottleneck"
    shortcut: bool = True
    e: Expansion = 0.5
    act: Act | None = None
