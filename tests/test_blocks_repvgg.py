"""RepVGG / QARepVGG: the fused Conv3×3 equals the three-branch training form; structure and counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasearch.nn.blocks.repvgg import QARepVGGBlock, RepVGGBlock
from nasearch.nn.inspect import count_params, fused_copy, fusion_max_abs_diff
from nasearch.nn.registry import BuildContext, load_blocks
from tests.fusion import randomize

CTX = BuildContext(act="relu", nc=5)


def _convs(m: nn.Module) -> list[nn.Conv2d]:
    return [x for x in m.modules() if isinstance(x, nn.Conv2d)]


CASES = [  # c_in, c_out, stride, identity, alpha_1x1
    (16, 16, 1, True, False),  # identity branch present
    (16, 16, 1, False, False),  # identity switched off
    (8, 16, 1, True, False),  # channels differ: no identity
    (16, 16, 2, True, False),  # stride 2: no identity
    (16, 16, 1, True, True),  # learnable 1×1 weight
    (3, 12, 2, False, True),  # stem-like
]


@pytest.mark.parametrize("cls", [RepVGGBlock, QARepVGGBlock])
@pytest.mark.parametrize(("c_in", "c_out", "stride", "identity", "alpha"), CASES)
def test_fused_equals_training_form(cls, c_in, c_out, stride, identity, alpha):
    block = randomize(cls(c_in, c_out, stride, CTX, identity=identity, alpha_1x1=alpha))
    x = torch.randn(2, c_in, 13, 11)
    assert fusion_max_abs_diff(block, x) <= 1e-4
    fused = fused_copy(block)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    (conv,) = _convs(fused)  # exactly one conv left
    assert conv.kernel_size == (3, 3) and conv.stride == (stride, stride) and conv.bias is not None
    assert count_params(fused) == 9 * c_in * c_out + c_out
    assert fused(x).shape == (2, c_out, (13 - 1) // stride + 1, (11 - 1) // stride + 1)


@pytest.mark.parametrize("cls", [RepVGGBlock, QARepVGGBlock])
def test_identity_branch_is_really_used(cls):
    """Turning the identity off must change the output: the branch is wired, not decorative."""
    torch.manual_seed(0)
    with_id = randomize(cls(8, 8, 1, CTX, identity=True)).eval()
    without = cls(8, 8, 1, CTX, identity=False)
    without.load_state_dict(with_id.state_dict(), strict=False)
    without.eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        assert float((with_id(x) - without(x)).abs().max()) > 1e-2


def test_training_form_parameter_counts():
    c = 16
    rep = RepVGGBlock(c, c, 1, CTX)  # 3×3, 1×1 (no bias), three BNs
    assert count_params(rep) == 9 * c * c + c * c + 3 * 2 * c
    qa = QARepVGGBlock(c, c, 1, CTX)  # 3×3+BN, 1×1 with bias, post-BN; no identity BN
    assert count_params(qa) == 9 * c * c + 2 * c + c * c + c + 2 * c
    assert count_params(QARepVGGBlock(c, c, 1, CTX, bias_1x1=False)) == count_params(qa) - c
    assert count_params(QARepVGGBlock(c, c, 1, CTX, alpha_1x1=True)) == count_params(qa) + 1


def test_qarepvgg_has_no_bn_on_the_1x1_and_identity_branches():
    qa = QARepVGGBlock(8, 8, 1, CTX)
    bns = [m for m in qa.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 2  # the 3×3 branch BN and the post-BN
    assert all(bn.eps == CTX.bn_eps and bn.momentum == CTX.bn_momentum for bn in bns)


def test_fuse_is_idempotent_and_keeps_training_usable():
    block = randomize(QARepVGGBlock(8, 8, 1, CTX)).eval()
    x = torch.randn(1, 8, 5, 5)
    ref = block(x)
    block.fuse()
    block.fuse()
    assert torch.allclose(block(x), ref, atol=1e-4)
    block.train()
    block(x).sum().backward()  # the fused conv still trains (e.g. for fine-tuning after fusion)
    assert block.reparam.weight.grad is not None


@pytest.mark.parametrize("variant", ["repvgg", "qarepvgg"])
def test_repvgg_stem_is_registered_and_fuses(variant):
    entry = load_blocks()["repvgg_stem"]
    assert entry.kind == "stem"
    stem, c_out = entry.build(entry.params(out=24, variant=variant), CTX, 3)
    assert c_out == 24
    assert isinstance(stem, QARepVGGBlock if variant == "qarepvgg" else RepVGGBlock)
    randomize(stem)
    x = torch.randn(2, 3, 32, 32)
    assert stem(x).shape == (2, 24, 16, 16)
    assert fusion_max_abs_diff(stem, x) <= 1e-4
    assert isinstance(stem.act, nn.ReLU)
