"""`v5_pan`'s parameters (YOLOv5's C3 path-aggregation neck with 1×1 laterals)."""

from __future__ import annotations

from nasearch.nn.fields import Channels, Expansion
from nasearch.nn.registry import Params, declare
from nasearch.nn.specs.v8_pan import PanLevel


class V5UpLevel(PanLevel):
    """A top-down level; `lateral` is the width of the 1×1 conv on the deeper map (reused bottom-up)."""

    lateral: Channels


@declare("v5_pan", "neck")
class V5PanParams(Params):
    up1: V5UpLevel
    up2: V5UpLevel
    down1: PanLevel
    down2: PanLevel
    shortcut: bool = False
    e: Expansion = 0.5
