"""`c2f_stage`'s parameters (YOLOv8's strided Conv then C2f)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act
from nasearch.nn.registry import Params, declare


@declare("c2f_stage", "stage")
class C2fStageParams(Params):
    out: Annotated[int, Field(ge=8, le=4096)]
    blocks: Annotated[int, Field(ge=1, le=16)]
    shortcut: bool = True
    e: Annotated[float, Field(gt=0, le=1)] = 0.5
    act: Act | None = None
