"""The random networks the network-file tests save and load, and the check that a loaded copy is the same."""

from __future__ import annotations

import torch

from tests.helpers import tiny_D_kwargs, tiny_G_kwargs

G_KWARGS = tiny_G_kwargs()
D_KWARGS = tiny_D_kwargs(block_kwargs=dict(freeze_layers=2), epilogue_kwargs=dict(mbstd_group_size=2))
TRAINING_SET_KWARGS = dict(class_name="training.dataset.ImageFolderDataset", path="/data/faces.zip", use_labels=False,
                           max_size=1000, xflip=False, resolution=32)


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Moves every weight off its initial value (noise strengths, biases, w_avg start at zero) so outputs depend on
    all of them; the FIR filters stay as built."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not name.endswith("resample_filter"):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.2)
    return module.eval().requires_grad_(False)


def assert_same_networks(loaded: dict, nets: dict, inputs: tuple, outputs: dict) -> None:
    """The loaded G, D and G_ema are the saved ones: same class, eval mode without gradients, equal state, and
    bit-identical outputs."""
    z, c, img = inputs
    for key in ("G", "D", "G_ema"):
        module = loaded[key]
        assert type(module) is type(nets[key])
        assert not module.training and not any(p.requires_grad for p in module.parameters())
        expected = nets[key].state_dict()
        assert list(module.state_dict()) == list(expected)
        assert all(torch.equal(tensor, expected[name]) for name, tensor in module.state_dict().items())
    assert torch.equal(loaded["G_ema"](z, c, noise_mode="const"), outputs["G_ema"])
    assert torch.equal(loaded["G"](z, c, noise_mode="const"), outputs["G"])
    assert torch.equal(loaded["D"](img, c), outputs["D"])
