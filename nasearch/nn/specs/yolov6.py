"""The YOLOv6 3.0 backbone blocks' parameters: `v6_rep_stage`, `v6_cspbep_stage`, `v6_simsppf`, `v6_cspsppf`.

`block` is YOLOv6's "basic block" ("repvgg" | "qarepvgg" | "conv"), so a space can pick it per stage.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act, Channels, Expansion, InnerBlock, OddKernel
from nasearch.nn.registry import Params, declare


@declare("v6_rep_stage", "stage")
class V6RepStageParams(Params):
    """EfficientRep stage: stride-2 basic block, then a RepBlock of `blocks` basic blocks."""

    out: Channels
    blocks: Annotated[int, Field(ge=1, le=32)]
    block: InnerBlock = "repvgg"
    act: Act | None = None


@declare("v6_cspbep_stage", "stage")
class V6CSPBepStageParams(Params):
    """CSPBep stage: stride-2 basic block, then BepC3 with `blocks` BottleReps (two basic blocks each).

    YOLOv6 configs give a depth n per stage; the stage then holds max(n // 2, 1) BottleReps.
    """

    out: Channels
    blocks: Annotated[int, Field(ge=1, le=16)]
    e: Expansion = 0.5
    block: InnerBlock = "repvgg"
    act: Act | None = None


@declare("v6_simsppf", "context")
class V6SimSPPFParams(Params):
    """SPPF; YOLOv6's "Sim" variant is the ReLU one (default), `act: silu` gives its plain SPPF."""

    out: Channels
    k: OddKernel = 5
    act: Act = "relu"


@declare("v6_cspsppf", "context")
class V6CSPSPPFParams(Params):
    """CSPSPPF; ReLU (default) is YOLOv6's SimCSPSPPF, `act: silu` its CSPSPPF."""

    out: Channels
    k: OddKernel = 5
    e: Expansion = 0.5
    act: Act = "relu"
