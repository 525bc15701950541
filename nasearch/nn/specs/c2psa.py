"""`sppf_c2psa`'s parameters (YOLO11's SPPF then C2PSA context block)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.fields import Act, Channels, Expansion, OddKernel
from nasearch.nn.registry import Params, declare


@declare("sppf_c2psa", "context")
class SPPFC2PSAParams(Params):
    """SPPF to `out` (hidden default c_in/2), then C2PSA of `psa_blocks` blocks at `out`."""

    out: Channels
    k: OddKernel = 5
    hidden: Channels | None = None
    psa_blocks: Annotated[int, Field(ge=1, le=8)] = 1
    psa_e: Expansion = 0.5
    act: Act | None = None

    def problems(self) -> list[tuple[str, str, str]]:
        """The attention's inner width int(out · psa_e) needs 2 channels: its keys are half a head wide."""
        inner = int(self.out * self.psa_e)
        if inner >= 2:
            return []
        return [
            (
                "psa_e",
                f"psa_e >= {2 / self.out:.3g}, so that int(out x psa_e) keeps the 2 channels attention needs",
                f"{self.psa_e:g} (int({self.out} x {self.psa_e:g}) = {inner} channels)",
            )
        ]
