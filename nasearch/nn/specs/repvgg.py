"""`repvgg_stem`'s parameters (one stride-2 (QA)RepVGG block from the image)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act, RepVariant
from nasearch.nn.registry import Params, declare


@declare("repvgg_stem", "stem")
class RepVGGStemParams(Params):
    out: Annotated[int, Field(ge=4, le=1024)]
    variant: RepVariant = "qarepvgg"
    act: Act | None = None
