"""`conv_stem`'s parameters (one strided Conv-BN-Act from the image)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act
from nasearch.nn.registry import Params, declare


@declare("conv_stem", "stem")
class ConvStemParams(Params):
    out: Annotated[int, Field(ge=4, le=1024)]
    k: Annotated[int, Field(ge=1, le=7)] = 3
    pad: Annotated[int, Field(ge=0, le=3)] | None = None  # default k // 2; YOLOv5's 6×6 stem uses 2
    act: Act | None = None

    def problems(self) -> list[tuple[str, str, str]]:
        """A stride-2 stem must halve the image exactly (k - 2·pad of 1 or 2), or the levels no longer line up:
        an even k with the default padding k // 2 gives H/2 + 1."""
        pad = self.k // 2 if self.pad is None else self.pad
        if self.k - 2 * pad in (1, 2):
            return []
        field = "k" if self.pad is None else "pad"
        return [
            (
                field,
                "an odd kernel size k (padding k // 2), or k - 2 x pad of 1 or 2 (e.g. k 6 with pad 2), "
                "so that the stride-2 stem halves the image",
                f"k {self.k} with padding {pad}",
            )
        ]
