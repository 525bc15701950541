"""`v8_pan`'s parameters (YOLOv8's C2f path-aggregation neck) and its per-level model, which other necks extend."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.registry import Params, declare


class PanLevel(Params):
    out: Annotated[int, Field(ge=8, le=4096)]
    blocks: Annotated[int, Field(ge=1, le=16)]


@declare("v8_pan", "neck")
class V8PanParams(Params):
    up1: PanLevel
    up2: PanLevel
    down1: PanLevel
    down2: PanLevel
    shortcut: bool = False
    e: Annotated[float, Field(gt=0, le=1)] = 0.5
