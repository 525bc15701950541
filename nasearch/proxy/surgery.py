"""Model surgery shared by the zero-cost scores: copies with BN removed, Gaussian re-initialisation.

Every score works on a deep copy, so the caller's model (weights, BN statistics, mode) is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from nasearch.nn.common import ACTIVATIONS
from nasearch.nn.detector import Detector

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
ACT_TYPES: tuple[type[nn.Module], ...] = (
    *(t for t in ACTIVATIONS.values() if t is not nn.Identity),
    nn.ReLU6,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
    nn.ELU,
    nn.PReLU,
    nn.Hardsigmoid,
    nn.Softplus,
)


def replace_modules(model: nn.Module, types: tuple[type[nn.Module], ...]) -> nn.Module:
    """Swap every submodule of the given types for nn.Identity, in place; returns the model."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, types):
                setattr(parent, name, nn.Identity())
    return model


def without_bn(model: nn.Module) -> nn.Module:
    """A deep copy with every BatchNorm removed (the 'BN off' network of SynFlow and MAE-DET)."""
    return replace_modules(copy.deepcopy(model), BN_TYPES)


@torch.no_grad()
def gaussian_init(model: nn.Module, generator: torch.Generator, std: float = 1.0) -> nn.Module:
    """Conv and linear weights ~ N(0, std²), their biases 0; BN affine to (1, 0); other parameters
    (scalar residual gains) to 1, their initial value. In place; returns the model."""
    for module in model.modules():
        if isinstance(module, (*CONV_TYPES, nn.Linear)):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, BN_TYPES) and module.affine:
            module.weight.fill_(1.0)
            module.bias.zero_()
        else:
            for p in module.parameters(recurse=False):
                p.fill_(1.0)
    return model


def neck_features(model: Detector, x: torch.Tensor) -> list[torch.Tensor]:
    """The detector's [P3, P4, P5]: what the head sees (the analogue of a classifier's pre-GAP map)."""
    return list(model.neck(model.features(x)))


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """BN normalizes by batch statistics (train mode) without the forward passes changing any buffer."""
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()
    try:
        yield model
    finally:
        model.load_state_dict(saved)
        model.train(was_training)


def check_input_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Proxies take an NCHW shape whose sides are multiples of 32 (the detector's largest stride)."""
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (batch, channels, height, width), got {tuple(input_shape)}")
    b, c, h, w = (int(v) for v in input_shape)
    if h % 32 or w % 32:
        raise ValueError(f"height and width must be multiples of 32, got {h}x{w}")
    return b, c, h, w
