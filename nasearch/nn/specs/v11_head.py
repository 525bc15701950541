"""`v11_head`: YOLO11's head takes YOLOv8's head parameters."""

from __future__ import annotations

from nasearch.nn.registry import declare
from nasearch.nn.specs.v8_head import V8HeadParams

declare("v11_head", "head")(V8HeadParams)
