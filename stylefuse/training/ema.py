"""G_ema: the exponential moving average of G's weights that the official code samples from."""

from __future__ import annotations

import torch


def ema_beta(batch_size: int, ema_kimg: float, ema_rampup: float | None, cur_nimg: int) -> float:
    """Per-iteration decay: a half-life of `ema_kimg` thousand images, at most `cur_nimg * ema_rampup` early on."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """Parameters move towards G's by 1 - beta; buffers (w_avg, noise maps) are copied as they are."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
