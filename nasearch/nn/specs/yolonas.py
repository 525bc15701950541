"""The YOLO-NAS blocks' parameters: `yolonas_stage`, `yolonas_spp`, `yolonas_pan`, `yolonas_head`.

Each bottleneck's inner block is a parameter ("qarepvgg" | "repvgg" | "conv"); the defaults reproduce the
published models: QARepVGG in the backbone and up-stages, Conv3×3 in the down-stages.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act, Channels, Depth, InnerBlock, OddKernel
from nasearch.nn.registry import Params, declare


@declare("yolonas_stage", "stage")
class YoloNASStageParams(Params):
    """A backbone stage: stride-2 block (no identity branch), then a CSP layer of `blocks` bottlenecks."""

    out: Channels
    blocks: Depth
    hidden: Channels  # width of the bottlenecks (and of conv1/conv2)
    concat_intermediates: bool = False
    block: InnerBlock = "qarepvgg"
    act: Act | None = None


@declare("yolonas_spp", "context")
class YoloNASSPPParams(Params):
    out: Channels
    hidden: Channels | None = None  # default c_in/2
    kernels: list[OddKernel] = [5, 9, 13]
    act: Act | None = None


class CSPLevel(Params):
    """One neck stage: output width, bottleneck count and width, inner block (its default per direction)."""

    out: Channels
    blocks: Depth
    hidden: Channels
    concat_intermediates: bool = False
    block: InnerBlock


class UpLevel(CSPLevel):
    """One up-stage: YOLO-NAS uses QARepVGG inner blocks here."""

    block: InnerBlock = "qarepvgg"


class DownLevel(CSPLevel):
    """One down-stage: YOLO-NAS uses plain Conv3×3 inner blocks here."""

    block: InnerBlock = "conv"


@declare("yolonas_pan", "neck")
class YoloNASPanParams(Params):
    up1: UpLevel
    up2: UpLevel
    down1: DownLevel
    down2: DownLevel
    act: Act | None = None


@declare("yolonas_head", "head")
class YoloNASHeadParams(Params):
    width_mult: Annotated[float, Field(gt=0, le=4)] = 1.0
    act: Act | None = None
