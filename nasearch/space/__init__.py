"""The search-space DSL: architectures, spaces, and the compiler to PyTorch."""

from nasearch.space.arch import Architecture, list_presets, load_arch, load_presets, presets_dir
from nasearch.space.build import build_model
from nasearch.space.space import Space, load_space

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
