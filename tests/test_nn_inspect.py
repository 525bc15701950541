"""Counting helpers: activation elements, and counting on a model whose weights were never initialised."""

from __future__ import annotations

import pytest
from torch import nn

from nasearch.nn.inspect import count_activations, count_flops, count_params, fused_copy, model_size, uninitialized
from nasearch.space import build_model, load_arch


def test_activations_count_every_activation_layers_output_and_nothing_else():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 1, stride=2), nn.ReLU(inplace=True))
    assert count_activations(model, 16) == 8 * 16 * 16 + 4 * 8 * 8  # the convs' own outputs are not counted
    model.train()
    count_activations(model, 16)
    assert model.training and not any(m._forward_hooks for m in model.modules())  # mode and hooks restored


@pytest.mark.parametrize("name", ["yolov8n", "yolo_nas_s"])
def test_an_uninitialised_build_counts_exactly_what_the_real_one_does(name):
    arch = load_arch(name)
    real, bare = build_model(arch), uninitialized(lambda: build_model(arch))
    assert all(p.device.type == "cpu" for p in bare.parameters())
    assert count_params(bare) == count_params(real)
    assert count_activations(bare, 64) == count_activations(real, 64) > 0
    assert count_flops(bare, 64) == count_flops(real, 64)


def test_activation_counts_scale_with_the_image_so_sizing_at_a_lower_resolution_ranks_the_same():
    bare = uninitialized(lambda: build_model(load_arch("yolov8n")))
    assert count_activations(bare, 256) == 4 * count_activations(bare, 128)


def test_model_size_counts_training_form_params_and_fused_form_flops():
    arch = load_arch("yolo_nas_s")  # RepVGG-style blocks: fusion removes branches, so the two forms differ
    model = build_model(arch)
    size = model_size(model, 64)
    fused = fused_copy(model)
    assert size.params == count_params(model) > count_params(fused)
    assert size.gflops == count_flops(fused, 64) / 1e9 < count_flops(model, 64) / 1e9
    assert model_size(model, 64, fused) == size  # a fused copy at hand gives the same figures
