"""NASWOT (Mellor et al. 2021): how differently an untrained network's units switch across a minibatch.

Each image gets a binary code, one bit per activation unit (pre-activation > 0, i.e. which side of the
unit's linear region it falls on). The kernel K[i, j] = N_A − Hamming(c_i, c_j) counts the units on which
images i and j agree; the score is log|det K|. Networks that give different images more different codes
separate them better before training, which the paper found to predict accuracy after training.

Detector adaptation: the codes are taken at every activation module of the whole detector (backbone,
neck and head) in train mode, on a minibatch of N(0, 1) images drawn from the seed — the score is then a
function of the architecture and the seed alone (the fresh initialisation is the architecture's own).
For SiLU and other smooth activations the bit is still the sign of the pre-activation, the boundary where
the unit turns from (nearly) off to (nearly) linear. K is accumulated as (N_A + S·Sᵀ)/2 with S = 2c − 1,
exact in float64, in column chunks so large feature maps never sit in memory as float.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nasearch.nn.detector import Detector
from nasearch.proxy.surgery import ACT_TYPES, batch_statistics, check_input_shape

CHUNK = 1 << 20  # code columns per matmul: float32 sums of ±1 stay exact far below 2**24


def code_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K[i, j] = number of positions where binary codes i and j agree; codes [B, N] bool → [B, B] float64."""
    flat = codes.reshape(codes.shape[0], -1)
    kernel = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float64)
    for start in range(0, flat.shape[1], CHUNK):
        s = flat[:, start : start + CHUNK].float() * 2 - 1
        kernel += (s @ s.T).double()
    return (kernel + flat.shape[1]) / 2


def kernel_score(kernel: torch.Tensor) -> float:
    """log|det K|; −inf when two codes coincide (K singular)."""
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else -math.inf


@torch.no_grad()
def naswot_kernel(model: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """The activation-code kernel of `model` on a seeded N(0, 1) minibatch (the model is not changed)."""
    shape = check_input_shape(input_shape)
    net = copy.deepcopy(model).float()
    kernel = torch.zeros(shape[0], shape[0], dtype=torch.float64)

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        kernel += code_kernel(inputs[0] > 0)

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, ACT_TYPES)]
    if not handles:
        raise ValueError("the model has no activation modules to take codes from")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    try:
        with batch_statistics(net):
            net(x)
    finally:
        for h in handles:
            h.remove()
    return kernel


def naswot_score(model: Detector, input_shape: tuple[int, ...], seed: int = 0) -> float:
    """log|det K| of the activation-code kernel over a minibatch of `input_shape[0]` images."""
    return kernel_score(naswot_kernel(model, input_shape, seed))
