"""Perceptual path length: slerp and the filtered mean, zero for a latent-free G, the official crop/downsample/gray
handling, the caller's G untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylefuse.metrics import calc_metric
from stylefuse.metrics.ppl import PathLengthSampler, filtered_mean, slerp
from tests.metrics.stand_ins import MemoryDataset, make_opts, random_images


def test_ppl_helpers() -> None:
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    for t in (0.0, 0.3, 1.0):
        s = slerp(a, b, torch.full([3, 1], t))
        torch.testing.assert_close(s.norm(dim=1), torch.ones(3))
        expected_angle = t * torch.acos(torch.nn.functional.cosine_similarity(a, b))
        torch.testing.assert_close(torch.acos(torch.nn.functional.cosine_similarity(a, s).clamp(-1, 1)),
                                   expected_angle, atol=1e-3, rtol=1e-3)
    # 1000 values 0..999: 1st percentile ('lower') = 9, 99th ('higher') = 990 -> mean of 9..990.
    dist = np.random.RandomState(0).permutation(1000).astype(np.float64)
    assert filtered_mean(dist) == pytest.approx(499.5, abs=1e-12)


def test_ppl_zero_for_latent_free_generator_and_growing_with_sensitivity(tiny_G, lpips_vgg) -> None:
    dataset = MemoryDataset(random_images(4))
    def ppl(metric: str, scale: float) -> float:
        G = tiny_G(seed=0).eval()
        with torch.no_grad():
            G.mapping.fc1.weight.mul_(scale)  # scale 0: w is the bias alone, whatever z is
        opts = make_opts(dataset, G=G, detectors={"lpips_vgg": lpips_vgg}, num_gen=8)
        return calc_metric(metric, opts)["results"][metric]

    assert ppl("ppl_zfull", 0.0) == ppl("ppl2_wend", 0.0) == 0.0  # Z + full paths + crop; W + ends + whole image
    assert 0 < ppl("ppl_zfull", 0.3) < ppl("ppl_zfull", 1.0)


def test_ppl_crops_box_downsamples_and_repeats_grayscale_like_the_official() -> None:
    class RampGenerator(torch.nn.Module):
        """512x512 grayscale: a fixed ramp image times the first latent coordinate."""

        z_dim, c_dim, w_dim, img_channels, img_resolution = 4, 0, 4, 1, 512

        def mapping(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return z[:, None, :].repeat(1, 2, 1)  # [N, num_ws=2, w_dim]

        def synthesis(self, ws: torch.Tensor, noise_mode: str, force_fp32: bool) -> torch.Tensor:
            ramp = torch.linspace(-1, 1, 512 * 512).reshape(1, 1, 512, 512)
            return ws[:, 0, 0, None, None, None].tanh() * ramp

    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
            seen.append(img0)
            return (img0 - img1).square().mean([1, 2, 3])

    sampler = PathLengthSampler(RampGenerator(), Recorder(), 1e-4, space="w", sampling="end", crop=True)
    torch.manual_seed(0)
    sampler(torch.zeros([2, 0]))
    torch.manual_seed(0)
    torch.rand([2])
    z0 = torch.randn([4, 4])[:2]
    ramp = torch.linspace(-1, 1, 512 * 512).reshape(512, 512)[192:448, 128:384]  # rows 3/8..7/8, cols 2/8..6/8
    expected = (z0[:, 0, None, None].tanh() * ramp.reshape(128, 2, 128, 2).mean([1, 3]) + 1) * 127.5
    assert seen[0].shape == (2, 3, 128, 128)  # crop 256x256, box-downsampled by 512 // 256, gray -> RGB
    torch.testing.assert_close(seen[0], expected[:, None].expand(2, 3, 128, 128))


def test_ppl_leaves_the_generator_untouched(tiny_G, lpips_vgg) -> None:
    G = tiny_G(seed=0).eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    opts = make_opts(MemoryDataset(random_images(4)), G=G, detectors={"lpips_vgg": lpips_vgg}, num_gen=4)
    calc_metric("ppl_zend", opts)
    for key, value in G.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
