"""`v6_head`'s parameters (YOLOv6 3.0's efficient decoupled head): DFL bins or direct ltrb distances."""

from __future__ import annotations

from nasearch.nn.fields import Act
from nasearch.nn.registry import Params, declare


@declare("v6_head", "head")
class V6HeadParams(Params):
    dfl: bool = True
    act: Act | None = None
