"""`sppf`'s parameters (YOLOv8's fast spatial pyramid pooling)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from nasearch.nn.fields import Act, odd
from nasearch.nn.registry import Params, declare


@declare("sppf", "context")
class SPPFParams(Params):
    out: Annotated[int, Field(ge=8, le=4096)]
    k: Annotated[int, Field(ge=3, le=13), AfterValidator(odd)] = 5
    hidden: Annotated[int, Field(ge=4, le=4096)] | None = None
    act: Act | None = None
