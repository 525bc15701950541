"""`v10_pan`'s parameters (YOLOv10's neck: YOLOv8's topology, a C2f of bottlenecks or CIBs per level)."""

from __future__ import annotations

from nasearch.nn.fields import C2fInner, Expansion
from nasearch.nn.registry import declare
from nasearch.nn.specs.v8_pan import PanLevel, V8PanParams


class C2fInnerLevel(PanLevel):
    block: C2fInner = "bottleneck"


@declare("v10_pan", "neck")
class V10PanParams(V8PanParams):
    """YOLOv8's neck fields with a per-level inner `block`; `shortcut` is the bottleneck levels' residual
    (YOLOv10: off), `cib_shortcut` the CIB levels' (YOLOv10: on)."""

    up1: C2fInnerLevel
    up2: C2fInnerLevel
    down1: C2fInnerLevel
    down2: C2fInnerLevel
    shortcut: bool = False
    cib_shortcut: bool = True
    e: Expansion = 0.5
