"""`v8_head`'s parameters (YOLOv8's decoupled DFL head); YOLO11's `v11_head` shares them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nasearch.nn.registry import Params, declare


@declare("v8_head", "head")
class V8HeadParams(Params):
    box_width: Annotated[int, Field(ge=8, le=1024)] | None = None
    cls_width: Annotated[int, Field(ge=8, le=1024)] | None = None
