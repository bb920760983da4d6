"""The projector's fast mode: the official loss optimized through much cheaper steps.

Where the official projector's time goes, and what each knob of the fast mode does about it (measured in
docs/performance.md, section Projection):
- `stages`: the LPIPS distance sees the image area-downsampled to 256x256, yet every official step renders and
  back-propagates every layer up to 1024. In a 'skip' generator the running image at a lower resolution is the
  coarse part of the final image (`SynthesisNetwork.running_image`), so most steps optimize through the synthesis
  truncated at 64, 128 or 256 and compare with the target downsampled to the same size; only the last steps run the
  full network against the official comparison.
- `start='nearest'`: instead of w_avg, the optimization starts from the mean of the few sampled w's whose images
  are nearest to the target (LPIPS at the first stage's resolution), so fewer steps get it there.
- `fused_modconv=False`: the grouped (fused) modulated convolution needs the gradient of every per-image weight,
  a second convolution per layer in the backward pass; with the weight shared by the batch and the styles applied
  to the activations, the frozen weights get none.
- `factored_demod`: the demodulation coefficients of every layer from one matmul (squared styles times the weight's
  squared norms) instead of from the modulated weight [N, O, I, 3, 3], which is large at 512 channels and, with the
  backward pass through it, cost as much as the convolutions of the synthesis truncated at 32 or 64.
- `precision='bfloat16'` and `channels_last`: the synthesis blocks (and LPIPS's VGG) compute in bfloat16, which
  CPUs with AVX512-BF16 (and Ampere+ GPUs) run at twice the float32 rate, in oneDNN's preferred layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stylefuse.errors import ConfigError
from stylefuse.nn import set_block_options
from stylefuse.projection.lpips import LpipsDistance

PRECISIONS = ("float32", "bfloat16")


def step_resolutions(stages: Sequence[Sequence] | None, num_steps: int, img_resolution: int) -> list[int]:
    """The resolution the loss sees at every step: stages [[resolution, share of the steps], ...] run in order, a
    resolution of None or at or above the network's meaning the full network. None = every step at full resolution
    (official)."""
    if stages is None:
        return [img_resolution] * num_steps
    stages = [(img_resolution if res is None else int(res), float(share)) for res, share in stages]
    if not stages or any(share <= 0 for _, share in stages) or abs(sum(s for _, s in stages) - 1) > 1e-6:
        raise ConfigError(f"projector.stages must be [[resolution, share], ...] with positive shares summing to 1, "
                          f"got {stages}")
    bad = [res for res, _ in stages if res < 16 or res & (res - 1)]
    if bad:
        raise ConfigError(f"projector.stages resolutions must be powers of two >= 16 (LPIPS's VGG pools 16x16 down "
                          f"to 1x1) or null (the full network), got {bad}")
    ends = np.cumsum([share for _, share in stages]) * num_steps
    return [min(stages[int(np.searchsorted(ends, step, side="right"))][0], img_resolution)
            for step in range(num_steps)]


def describe_schedule(resolutions: Sequence[int]) -> str:
    """Steps per resolution in the order they run, e.g. '100 at 64, 50 at 256, 10 at 1024'."""
    runs = []
    for res in resolutions:
        if runs and runs[-1][0] == res:
            runs[-1][1] += 1
        else:
            runs.append([res, 1])
    return ", ".join(f"{count} at {res}" for res, count in runs)


def check_truncation(G: torch.nn.Module, resolutions: Sequence[int]) -> None:
    """Coarse stages need an image before the last block: only a 'skip' synthesis network has one."""
    if min(resolutions) < G.img_resolution and G.synthesis.b4.architecture != "skip":
        raise ConfigError(f"projector.stages below the output resolution need a 'skip' generator, this one is "
                          f"{G.synthesis.b4.architecture!r}: set projector.stages=null")


def downsample(img: torch.Tensor, resolution: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, resolution, resolution] by area averaging (the official comparison's filter)."""
    return img if img.shape[2] == resolution else F.interpolate(img, size=(resolution, resolution), mode="area")


def use_fast_blocks(G: torch.nn.Module, precision: str, channels_last: bool, factored_demod: bool) -> None:
    """Sets the compute precision, layout and demodulation of G's synthesis blocks in place (a private copy: the
    block options of bfloat16 are those of the official float16 blocks, switched on for every resolution)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"projector.precision must be one of {PRECISIONS}, got {precision!r}")
    set_block_options(G, fp32_channels_last=channels_last, factored_demod=factored_demod)
    if precision == "bfloat16":
        for block in G.synthesis.modules():
            if hasattr(block, "use_fp16"):
                block.use_fp16 = True
                block.fp16_dtype = "bfloat16"
                block.channels_last = channels_last


@torch.no_grad()
def nearest_start(G: torch.nn.Module, distance: LpipsDistance, target: torch.Tensor, num_candidates: int,
                  num_nearest: int, resolution: int) -> torch.Tensor:
    """The mean w [N, 1, w_dim] of the `num_nearest` of `num_candidates` mapped RandomState(123) z's whose images
    (truncated at `resolution`, G's own noise) are nearest to each target [N, C, H, W] in [0, 255] by LPIPS."""
    if not 1 <= num_nearest <= num_candidates:
        raise ConfigError(f"projector.start_nearest must be 1..start_candidates ({num_candidates}), got "
                          f"{num_nearest}")
    device = target.device
    z = np.random.RandomState(123).randn(num_candidates, G.z_dim)
    w = G.mapping(torch.from_numpy(z).to(device), None)[:, :1]  # [K, 1, w_dim]
    features = torch.cat([
        distance.features((G.synthesis.running_image(chunk.repeat(1, G.num_ws, 1), resolution, noise_mode="const")
                           + 1) * (255 / 2))
        for chunk in w.split(16)])  # [K, num_features]
    target_features = distance.features(downsample(target, min(resolution, 256)))  # [N, num_features]
    dist = torch.cdist(target_features, features).square()  # [N, K]
    nearest = dist.topk(num_nearest, dim=1, largest=False).indices  # [N, num_nearest]
    return w[nearest, 0].mean(dim=1, keepdim=True)
