"""`v6_repbifpan`'s parameters (YOLOv6 3.0's Rep-BiFPAN neck, or its CSP form)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act, Channels, Expansion, InnerBlock
from nasearch.nn.registry import Params, declare


class NeckLevel(Params):
    """One neck stage: output width and depth (basic blocks, or BottleReps when `csp`)."""

    out: Channels
    blocks: Annotated[int, Field(ge=1, le=32)]


@declare("v6_repbifpan", "neck")
class V6RepBiFPANParams(Params):
    """up1 → P4 (top-down), up2 → P3 (output), down1 → P4 out, down2 → P5 out; `csp` swaps RepBlock for BepC3."""

    up1: NeckLevel
    up2: NeckLevel
    down1: NeckLevel
    down2: NeckLevel
    csp: bool = False
    e: Expansion = 0.5
    block: InnerBlock = "repvgg"
    act: Act | None = None
    fuse_act: Act = "relu"
