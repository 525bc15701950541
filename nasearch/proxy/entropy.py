"""MAE-DET / DAMO-YOLO entropy score: the closed-form entropy of a Gaussian-initialised backbone.

MAE-DET (Sun et al. 2022) scores a detector backbone without data or training: with BN removed and every
weight drawn from N(0, 1), a k×k convolution over C_in channels multiplies the variance of its input by
C_in·k², so the log standard deviation of a feature map is the sum of ½·log(C_in·k²) over the convolutions
on the way from the input. A stage's entropy is that log std plus log(channels); the score weights the
stage entropies of strides 2, 4, 8, 16, 32 by the prior (0, 0, 1, 1, 6), i.e. C3, C4 and (mostly) C5.

Computation: the recursion is exact, not sampled. Every conv gets all-ones weights, circular padding
(so no border effects), zero bias; BN and activations become identities (the published formula carries no
activation factor); scalar residual gains are 1. A forward pass of an all-ones image (unit second moment
per channel) then carries, in every channel, exactly the second moment the closed form gives: a conv sums
k²·(input second moments of its group), a residual add sums independent branches' variances, concat and
split keep per-channel values, pooling and nearest upsampling keep them. This generalises the chain
formula to the DAGs of C2f and YOLO-NAS blocks (parallel branches are not double-counted). RepVGG-style
blocks are scored in training form: their 3×3, 1×1 and identity branches add, C·(9 + 1) + 1 per block.

Only the backbone (stem, four stages, context on the last) enters, as in MAE-DET. The score grows without
bound with width and depth, so it is meaningful only when the search also bounds latency and depth.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nasearch.nn.detector import Detector
from nasearch.proxy.surgery import ACT_TYPES, BN_TYPES, CONV_TYPES, replace_modules

STAGE_WEIGHTS: tuple[float, ...] = (0.0, 0.0, 1.0, 1.0, 6.0)  # strides 2, 4, 8, 16, 32
PROBE_SIZE = 64  # circular padding keeps every map spatially constant: any size ≥ 32 gives the same value


@torch.no_grad()
def _moment_network(model: Detector) -> Detector:
    """The copy whose forward pass computes the closed-form second moments (see the module docstring)."""
    net = replace_modules(copy.deepcopy(model), (*BN_TYPES, *ACT_TYPES)).double().eval()
    for module in net.modules():
        if isinstance(module, CONV_TYPES):
            module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
            if isinstance(module, nn.Conv2d) and any(p > 0 for p in module._reversed_padding_repeated_twice):
                module.padding_mode = "circular"
        else:
            for p in module.parameters(recurse=False):
                p.fill_(1.0)
    return net


@torch.no_grad()
def stage_log_std(model: Detector) -> list[tuple[float, int]]:
    """(log std, channels) of the stem, stage 1-3 and stage 4 + context outputs (strides 2..32)."""
    net = _moment_network(model)
    x = torch.ones(1, 3, PROBE_SIZE, PROBE_SIZE, dtype=torch.float64)
    outs = []
    x = net.stem(x)
    outs.append(x)
    for i, stage in enumerate(net.stages):
        x = stage(x)
        if i == len(net.stages) - 1:
            x = net.context(x)
        outs.append(x)
    result = []
    for feat in outs:
        moment = float(feat.mean())  # every position of a channel holds the same value
        if not math.isfinite(moment) or moment <= 0:
            raise FloatingPointError(f"second moment {moment} out of float64 range (network too deep?)")
        result.append((0.5 * math.log(moment), int(feat.shape[1])))
    return result


def stage_entropies(model: Detector) -> list[float]:
    """Per-stage entropy: log std of the stage output plus log of its channel count."""
    return [log_std + math.log(channels) for log_std, channels in stage_log_std(model)]


def entropy_score(
    model: Detector, input_shape: tuple[int, ...] | None = None, weights: tuple[float, ...] = STAGE_WEIGHTS
) -> float:
    """MAE-DET score: Σ_i weights[i]·entropy_i over strides 2, 4, 8, 16, 32.

    `input_shape` is accepted for a uniform proxy signature; the closed form does not depend on it.
    """
    entropies = stage_entropies(model)
    if len(weights) != len(entropies):
        raise ValueError(f"need {len(entropies)} stage weights, got {len(weights)}")
    return float(sum(w * e for w, e in zip(weights, entropies, strict=True)))
