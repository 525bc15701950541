"""Zen-score (Lin et al. 2021): expressivity from the response to a tiny input perturbation.

Weights are redrawn from N(0, 1) (the score is a function of the architecture, not of trained weights),
BN normalizes by batch statistics, and the score is

    log E_{x, δ} ‖f(x) − f(x + α·δ)‖_F  +  Σ_BN log σ̄_BN,   x, δ ~ N(0, 1), α = 0.01,

where σ̄_BN = sqrt(mean over channels of the batch variance the BN divides by). The BN term puts back the
scale each BN removed, so the score measures the Gaussian network without BN while staying numerically tame.

Detector adaptation: f is the neck output [P3, P4, P5] — what the head sees, the analogue of the
pre-global-pooling feature map the paper uses for classifiers (the head's prediction layers play the
classifier's role and are left out, as the paper leaves out the classifier). ‖·‖_F is taken over the three
maps together, per image, then averaged over the batch; the BN term covers every BN on the way
(stem, backbone, context, neck).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nasearch.nn.detector import Detector
from nasearch.proxy.surgery import BN_TYPES, check_input_shape, gaussian_init, neck_features

ALPHA = 0.01


def _bn_log_scales(net: nn.Module) -> tuple[list[float], list[torch.utils.hooks.RemovableHandle]]:
    """Hooks that record log σ̄ of every BN's input (batch statistics) while `logs` is being filled."""
    logs: list[float] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach()
        dims = [d for d in range(x.dim()) if d != 1]
        var = x.var(dim=dims, unbiased=False).mean()
        logs.append(0.5 * math.log(max(float(var), 1e-300)))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, BN_TYPES)]
    return logs, handles


@torch.no_grad()
def zen_score(
    model: Detector, input_shape: tuple[int, ...], seed: int = 0, repeats: int = 1, alpha: float = ALPHA
) -> float:
    """Mean Zen-score over `repeats` draws of (weights, x, δ); deterministic for a seed."""
    shape = check_input_shape(input_shape)
    if shape[0] < 2:
        raise ValueError("Zen-score needs a batch of at least 2 (BN uses batch statistics)")
    net = copy.deepcopy(model).float().train()
    g = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(repeats):
        gaussian_init(net, g)
        x = torch.randn(shape, generator=g)
        delta = torch.randn(shape, generator=g)
        logs, handles = _bn_log_scales(net)
        try:
            clean = neck_features(net, x)
        finally:
            for h in handles:
                h.remove()
        moved = neck_features(net, x + alpha * delta)
        sq = sum(((a - b) ** 2).flatten(1).sum(1) for a, b in zip(clean, moved, strict=True))
        norm = float(torch.as_tensor(sq).sqrt().mean())
        if not math.isfinite(norm) or norm <= 0:
            raise FloatingPointError(f"perturbation response {norm} is not a positive finite number")
        scores.append(math.log(norm) + sum(logs))
    return float(sum(scores) / len(scores))
