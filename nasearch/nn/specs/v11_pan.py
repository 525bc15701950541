"""`v11_pan`'s parameters (YOLO11's neck: YOLOv8's topology with C3k2 levels)."""

from __future__ import annotations

from nasearch.nn.fields import Expansion
from nasearch.nn.registry import declare
from nasearch.nn.specs.v8_pan import PanLevel, V8PanParams


class C3k2Level(PanLevel):
    c3k: bool = False


@declare("v11_pan", "neck")
class V11PanParams(V8PanParams):
    """YOLOv8's neck fields with a per-level `c3k`; YOLO11 keeps the residuals (`shortcut` true)."""

    up1: C3k2Level
    up2: C3k2Level
    down1: C3k2Level
    down2: C3k2Level
    shortcut: bool = True
    e: Expansion = 0.5
