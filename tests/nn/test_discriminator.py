"""Discriminator: golden logits and R1 gradients, minibatch-std groups, frozen layers."""

from __future__ import annotations

import torch

from stylefuse.nn import MinibatchStdLayer

ATOL = 1e-5


def test_golden_discriminator_logits_and_r1(golden, golden_nets):
    _, D = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        torch.testing.assert_close(D(outputs["img_const"], inputs["c"]), outputs["logits_fake"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(inputs["real"], inputs["c"]), outputs["logits_real"], atol=ATOL, rtol=0)
    real = inputs["real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, inputs["c"]).sum(), real)
    torch.testing.assert_close(grad.square().sum(dim=[1, 2, 3]), outputs["r1_per_sample"], atol=ATOL, rtol=1e-4)


def test_minibatch_std_groups_are_strided():
    x = torch.randn(8, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 2, 2)
    # Sample 1's group is {1, 3, 5, 7} (stride N / G = 2).
    group = x[[1, 3, 5, 7]]
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[1, 4], expected.expand(2, 2))
    torch.testing.assert_close(y[3, 4], y[1, 4])


def test_freeze_d_turns_the_first_layers_into_buffers(tiny_D):
    D = tiny_D(block_kwargs=dict(freeze_layers=2))
    names = {name for name, _ in D.named_parameters()}
    assert "b32.fromrgb.weight" not in names and "b32.conv0.weight" not in names and "b32.conv1.weight" in names
    assert "b32.fromrgb.weight" in D.state_dict() and "b32.conv0.bias" in D.state_dict()
    assert set(D.state_dict()) == set(tiny_D().state_dict())
