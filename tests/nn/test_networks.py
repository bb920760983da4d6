"""Networks: exact agreement with the official StyleGAN2-ADA networks and the behaviour of every option."""

from __future__ import annotations

import copy

import pytest
import torch

from stylefuse.nn import (
    Discriminator,
    Generator,
    MappingNetwork,
    MinibatchStdLayer,
    modulated_conv2d,
    set_block_options,
)
from tests.helpers import GOLDEN_DIR

GOLDEN = GOLDEN_DIR / "g32_skip_resnet.pt"
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.is_file():
        pytest.fail(f"golden file missing: {GOLDEN} (the shared/ folder must sit beside the repository)")
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(scope="module")
def golden_nets(golden):
    G = Generator(**golden["official_kwargs"]["G"]).eval()
    D = Discriminator(**golden["official_kwargs"]["D"]).eval()
    G.load_state_dict(golden["G_state_dict"], strict=True)
    D.load_state_dict(golden["D_state_dict"], strict=True)
    return G, D


def tiny_G(**synthesis_kwargs) -> Generator:
    c_dim = synthesis_kwargs.pop("c_dim", 0)
    return Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=32, img_channels=3,
                     mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=512, channel_max=32, **synthesis_kwargs))


def tiny_D(**kwargs) -> Discriminator:
    return Discriminator(c_dim=kwargs.pop("c_dim", 0), img_resolution=32, img_channels=3, channel_base=512,
                         channel_max=32, **kwargs)


# --- Golden tensors from the official implementation -----------------------------------------------------------

def test_state_dict_names_shapes_and_order_are_official(golden, golden_nets):
    G, D = golden_nets
    for ours, theirs in [(G.state_dict(), golden["G_state_dict"]), (D.state_dict(), golden["D_state_dict"])]:
        assert list(ours.keys()) == list(theirs.keys())
        assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_golden_mapping_and_synthesis(golden, golden_nets):
    G, _ = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        ws = G.mapping(inputs["z"], inputs["c"], truncation_psi=inputs["truncation_psi"],
                       truncation_cutoff=inputs["truncation_cutoff"])
        torch.testing.assert_close(ws, outputs["ws"], atol=ATOL, rtol=0)
        for mode in ("const", "none"):
            img = G.synthesis(outputs["ws"], noise_mode=mode)
            torch.testing.assert_close(img, outputs[f"img_{mode}"], atol=ATOL, rtol=0)
        img = G.synthesis(inputs["mixed_ws"], noise_mode="const")
        torch.testing.assert_close(img, outputs["img_mixed"], atol=ATOL, rtol=0)


def test_golden_discriminator_logits_and_r1(golden, golden_nets):
    _, D = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        torch.testing.assert_close(D(outputs["img_const"], inputs["c"]), outputs["logits_fake"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(inputs["real"], inputs["c"]), outputs["logits_real"], atol=ATOL, rtol=0)
    real = inputs["real"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, inputs["c"]).sum(), real)
    torch.testing.assert_close(grad.square().sum(dim=[1, 2, 3]), outputs["r1_per_sample"], atol=ATOL, rtol=1e-4)


def test_golden_generator_end_to_end_with_fused_modconv(golden, golden_nets):
    # Eval mode picks the fused (grouped) modulated convolution; the golden images used the same ws.
    G, _ = golden_nets
    inputs, outputs = golden["inputs"], golden["outputs"]
    with torch.no_grad():
        img = G(inputs["z"], inputs["c"], truncation_psi=inputs["truncation_psi"], noise_mode="const")
        img_nonfused = G.synthesis(outputs["ws"], noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(img, outputs["img_const"], atol=ATOL, rtol=0)
    torch.testing.assert_close(img_nonfused, outputs["img_const"], atol=ATOL, rtol=0)


# --- Structure ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cfg, G_params, mapping_params, D_params, num_ws",
    [  # Spec 3.7 parameter counts of official configurations (z = w = 512).
        (dict(res=32, fmaps=0.5, map=2, c_dim=0, d_arch="resnet"), 19_947_539, 525_312, 21_507_073, 8),
        (dict(res=32, fmaps=1, map=2, c_dim=10, d_arch="orig"), 20_215_315, 793_088, 23_089_664, 8),
        (dict(res=256, fmaps=0.5, map=8, c_dim=0, d_arch="resnet"), 24_767_458, 2_101_248, 24_001_089, 14),
    ],
)
def test_official_parameter_counts(cfg, G_params, mapping_params, D_params, num_ws):
    channel_base = int(cfg["fmaps"] * 32768)
    G = Generator(z_dim=512, c_dim=cfg["c_dim"], w_dim=512, img_resolution=cfg["res"], img_channels=3,
                  mapping_kwargs=dict(num_layers=cfg["map"]),
                  synthesis_kwargs=dict(channel_base=channel_base, channel_max=512, num_fp16_res=4, conv_clamp=256))
    D = Discriminator(c_dim=cfg["c_dim"], img_resolution=cfg["res"], img_channels=3, architecture=cfg["d_arch"],
                      channel_base=channel_base, channel_max=512, num_fp16_res=4, conv_clamp=256)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert (count(G), count(G.mapping), count(D), G.num_ws) == (G_params, mapping_params, D_params, num_ws)


@pytest.mark.parametrize("g_arch", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("d_arch", ["orig", "skip", "resnet"])
def test_every_architecture_combination_runs(g_arch, d_arch):
    torch.manual_seed(0)
    G, D = tiny_G(architecture=g_arch), tiny_D(architecture=d_arch)
    img = G(torch.randn(4, 32), None)
    assert img.shape == (4, 3, 32, 32) and img.dtype == torch.float32
    logits = D(img, None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in D.parameters())
    has_torgb = [hasattr(getattr(G.synthesis, f"b{r}"), "torgb") for r in G.synthesis.block_resolutions]
    assert has_torgb == ([True] * 4 if g_arch == "skip" else [False] * 3 + [True])


def test_conditional_model_uses_the_label():
    torch.manual_seed(0)
    G, D = tiny_G(c_dim=10), tiny_D(c_dim=10, architecture="orig")
    z = torch.randn(2, 32).repeat(2, 1)
    c = torch.eye(10)[[0, 1, 2, 3]]
    ws = G.mapping(z, c)
    img = G.synthesis(ws, noise_mode="const")
    assert ws.shape == (4, G.num_ws, 32) and img.shape == (4, 3, 32, 32)
    assert not torch.allclose(ws[0], ws[2])  # same z, different label
    assert D(img, c).shape == (4, 1)
    assert D.mapping.embed.weight.shape == (32, 10) and "b4.out.weight" in D.state_dict()
    assert D.b4.out.weight.shape == (D.b4.cmap_dim, 32)


def test_fused_and_nonfused_modulated_conv_agree():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 8, 16, 16), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    noise = torch.randn(3, 1, 16, 16)
    for demodulate in (True, False):
        a = modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=True)
        b = modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=False)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    G = tiny_G(architecture="resnet").eval()
    ws = G.mapping(torch.randn(3, 32), None)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const", fused_modconv=True),
                               G.synthesis(ws, noise_mode="const", fused_modconv=False), atol=1e-5, rtol=1e-5)


def test_noise_modes():
    torch.manual_seed(0)
    G = tiny_G().eval()
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    ws = G.mapping(torch.randn(2, 32), None)
    const = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
    assert not torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    assert not torch.allclose(const, G.synthesis(ws, noise_mode="none"))
    with pytest.raises(AssertionError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")


def test_truncation_and_w_avg_tracking():
    torch.manual_seed(0)
    M = MappingNetwork(z_dim=16, c_dim=0, w_dim=16, num_ws=6, num_layers=2)
    z = torch.randn(8, 16)
    M.train()
    w = M(z, None)[:, 0]
    expected_avg = (1 - 0.995) * w.mean(dim=0)  # w_avg starts at zero
    torch.testing.assert_close(M.w_avg, expected_avg)
    before = M.w_avg.clone()
    M(z, None, skip_w_avg_update=True)
    assert torch.equal(M.w_avg, before)
    M.eval()
    ws = M(z, None)
    assert torch.equal(M.w_avg, before)  # eval mode never updates
    torch.testing.assert_close(M(z, None, truncation_psi=0), M.w_avg.expand_as(ws))
    cut = M(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], M.w_avg + 0.5 * (ws[:, :2] - M.w_avg))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


def test_minibatch_std_groups_are_strided():
    x = torch.randn(8, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 2, 2)
    # Sample 1's group is {1, 3, 5, 7} (stride N / G = 2).
    group = x[[1, 3, 5, 7]]
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[1, 4], expected.expand(2, 2))
    torch.testing.assert_close(y[3, 4], y[1, 4])


def test_fp16_blocks_run_and_stay_close_to_fp32():
    torch.manual_seed(0)
    G = tiny_G(num_fp16_res=2, conv_clamp=256).eval()
    D = tiny_D(num_fp16_res=2, conv_clamp=256).eval()
    assert [getattr(G.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [False, False, True, True]
    assert [getattr(D, f"b{r}").use_fp16 for r in (32, 16, 8)] == [True, True, False]
    z = torch.randn(4, 32)
    with torch.no_grad():
        img16, img32 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const", force_fp32=True)
        x, _ = G.synthesis.b16(torch.randn(4, 32, 8, 8), None, torch.randn(4, 3, 32))
    assert img16.dtype == torch.float32 and x.dtype == torch.float16
    assert (img16 - img32).abs().max() < 2e-2 * img32.abs().max()
    torch.testing.assert_close(D(img32, None), D(img32, None, force_fp32=True), atol=5e-3, rtol=1e-2)


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    G = tiny_G(num_fp16_res=2, fp16_channels_last=True).eval()
    G_ref = tiny_G(num_fp16_res=2).eval()
    G_ref.load_state_dict(G.state_dict())
    z = torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(G(z, None, noise_mode="const"), G_ref(z, None, noise_mode="const"),
                                   atol=1e-2, rtol=1e-2)


def test_conv_clamp_limits_activations():
    torch.manual_seed(0)
    G = tiny_G(architecture="orig", conv_clamp=0.5).eval()
    G.synthesis.b32.torgb.bias.data.fill_(100.0)
    with torch.no_grad():
        img = G(torch.randn(2, 32), None, noise_mode="const")
    torch.testing.assert_close(img, torch.full_like(img, 0.5))  # only the last ToRGB writes the image, clamped


def test_freeze_d_turns_the_first_layers_into_buffers():
    D = tiny_D(block_kwargs=dict(freeze_layers=2))
    names = {name for name, _ in D.named_parameters()}
    assert "b32.fromrgb.weight" not in names and "b32.conv0.weight" not in names and "b32.conv1.weight" in names
    assert "b32.fromrgb.weight" in D.state_dict() and "b32.conv0.bias" in D.state_dict()
    assert set(D.state_dict()) == set(tiny_D().state_dict())


def test_init_kwargs_rebuild_the_same_architecture():
    G = tiny_G(architecture="resnet")
    G2 = Generator(**copy.deepcopy(G.init_kwargs))
    assert {k: v.shape for k, v in G.state_dict().items()} == {k: v.shape for k, v in G2.state_dict().items()}
    D = tiny_D(architecture="skip", epilogue_kwargs=dict(mbstd_group_size=2))
    assert Discriminator(**D.init_kwargs).b4.mbstd.group_size == 2


def test_block_options_change_layout_and_precision_not_results():
    torch.manual_seed(0)
    G, D = tiny_G(num_fp16_res=2).eval(), tiny_D(num_fp16_res=2).eval()
    z = torch.randn(4, 32)
    with torch.no_grad():
        img, logits = G(z, None, noise_mode="const"), D(G(z, None, noise_mode="const", force_fp32=True), None)
        set_block_options(G, fp32_channels_last=True)
        set_block_options(D, fp32_channels_last=True)
        x, _ = G.synthesis.b8(torch.randn(4, 32, 4, 4), None, torch.randn(4, 3, 32), fused_modconv=False)
        assert x.is_contiguous(memory_format=torch.channels_last)  # the layout training (shared conv) runs in
        torch.testing.assert_close(G(z, None, noise_mode="const"), img, atol=1e-5, rtol=1e-5)
        set_block_options(G, fp16_dtype="bfloat16")
        x, _ = G.synthesis.b16(torch.randn(4, 32, 8, 8), None, torch.randn(4, 3, 32))
        assert x.dtype == torch.bfloat16
        assert (G(z, None, noise_mode="const") - img).abs().max() < 0.05 * img.abs().max()
        torch.testing.assert_close(D(G(z, None, noise_mode="const", force_fp32=True), None), logits, atol=5e-3,
                                   rtol=1e-2)
