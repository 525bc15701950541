"""The search-space DSL: architectures, spaces, and the compiler to PyTorch.

Loading, validating, sampling and describing spaces need no torch; `build_model` (the compiler) imports
it, so it is loaded on first use.
"""

from typing import TYPE_CHECKING, Any

from nasearch.space.arch import Architecture, list_presets, load_arch, load_presets, presets_dir
from nasearch.space.space import Space, load_space

if TYPE_CHECKING:
    from nasearch.space.build import build_model

__all__ = [
    "Architecture",
    "Space",
    "build_model",
    "list_presets",
    "load_arch",
    "load_presets",
    "load_space",
    "presets_dir",
]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from nasearch.space.build import build_model

        return build_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
