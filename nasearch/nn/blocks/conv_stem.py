"""`conv_stem`: one strided Conv-BN-Act from the image (the P1 of YOLOv8, YOLO11 and YOLOv5)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.common import ConvBNAct
from nasearch.nn.fields import Act
from nasearch.nn.registry import BuildContext, Params, register


class ConvStemParams(Params):
    out: Annotated[int, Field(ge=4, le=1024)]
    k: Annotated[int, Field(ge=1, le=7)] = 3
    pad: Annotated[int, Field(ge=0, le=3)] | None = None  # default k // 2; YOLOv5's 6×6 stem uses 2
    act: Act | None = None


@register("conv_stem", "stem", ConvStemParams)
def build(p: ConvStemParams, ctx: BuildContext, c_in: int) -> tuple[ConvBNAct, int]:
    """Conv k×k stride 2 (padding `pad`, default k // 2) + BN + act."""
    return ConvBNAct(c_in, p.out, p.k, 2, ctx, act=p.act, p=p.pad), p.out
