"""Perceptual Path Length (Karras et al. 2019), computed as the official StyleGAN2-ADA code does."""

from __future__ import annotations

import copy

import numpy as np
import torch
import tqdm

from stylefuse.metrics.collect import gather_rows, sample_labels
from stylefuse.metrics.options import MetricOptions


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b [N, D] at t [N, 1]; returns unit vectors."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


class PathLengthSampler(torch.nn.Module):
    """LPIPS distance (itself a squared feature distance) between images at t and t + epsilon on random latent paths,
    divided by epsilon^2."""

    def __init__(
        self,
        G: torch.nn.Module,                 # Generator; a private copy is made (its noise buffers are redrawn).
        distance: torch.nn.Module,          # LPIPS: two float image batches in [0, 255] -> [N].
        epsilon: float,                     # Step along the path.
        space: str,                         # 'z' (slerp of normalized z) or 'w' (lerp of mapped w).
        sampling: str,                      # 'full' (t ~ U(0, 1)) or 'end' (t = 0).
        crop: bool,                         # Keep the central face region (rows 3/8..7/8, columns 2/8..6/8).
    ) -> None:
        super().__init__()
        assert space in ("z", "w") and sampling in ("full", "end")
        self.G = copy.deepcopy(G).eval().requires_grad_(False)
        self.distance = distance
        self.epsilon = epsilon
        self.space = space
        self.sampling = sampling
        self.crop = crop

    @torch.no_grad()
    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """c [N, c_dim] -> [N] path-length samples."""
        G, n, device = self.G, c.shape[0], c.device
        t = torch.rand([n], device=device) * (1 if self.sampling == "full" else 0)
        z0, z1 = torch.randn([n * 2, G.z_dim], device=device).chunk(2)

        if self.space == "w":
            w0, w1 = G.mapping(torch.cat([z0, z1]), torch.cat([c, c])).chunk(2)  # [N, num_ws, w_dim] each
            wt0 = w0.lerp(w1, t[:, None, None])
            wt1 = w0.lerp(w1, t[:, None, None] + self.epsilon)
        else:
            zt0 = slerp(z0, z1, t[:, None])
            zt1 = slerp(z0, z1, t[:, None] + self.epsilon)
            wt0, wt1 = G.mapping(torch.cat([zt0, zt1]), torch.cat([c, c])).chunk(2)

        # Both ends of a path share one noise draw; a new one per batch.
        for name, buf in G.named_buffers():
            if name.endswith(".noise_const"):
                buf.copy_(torch.randn_like(buf))
        img = G.synthesis(torch.cat([wt0, wt1]), noise_mode="const", force_fp32=True)  # [2N, C, H, W]

        if self.crop:
            assert img.shape[2] == img.shape[3]
            k = img.shape[2] // 8
            img = img[:, :, k * 3:k * 7, k * 2:k * 6]
        factor = G.img_resolution // 256  # box-downsample large images to 256-scale, as the official
        if factor > 1:
            img = img.reshape([-1, img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor, factor])
            img = img.mean([3, 5])
        img = (img + 1) * (255 / 2)
        if G.img_channels == 1:
            img = img.repeat([1, 3, 1, 1])

        img_t0, img_t1 = img.chunk(2)
        return self.distance(img_t0, img_t1) / self.epsilon ** 2


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of the samples between the 1st ('lower') and 99th ('higher') percentiles."""
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


def compute_ppl(opts: MetricOptions, num_samples: int, epsilon: float, space: str, sampling: str, crop: bool,
                batch_size: int) -> float:
    dataset = opts.open_dataset()
    lpips = opts.detectors.get("lpips_vgg", opts.device, opts.rank, opts.num_gpus)
    sampler = PathLengthSampler(opts.G, lpips, epsilon, space, sampling, crop).to(opts.device)
    rng = opts.rng(stream=3)
    dist = []
    with opts.seeded_torch():
        for _ in tqdm.trange(0, num_samples, batch_size * opts.num_gpus, desc="ppl sampling", unit="batch",
                             disable=not (opts.verbose and opts.rank == 0)):
            c = sample_labels(opts, dataset, batch_size, rng)
            dist.append(gather_rows(sampler(c), opts.num_gpus))
    return filtered_mean(torch.cat(dist)[:num_samples].cpu().numpy())
