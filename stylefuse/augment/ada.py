"""The ADA heuristic: tune the augmentation probability p from the discriminator's outputs on real images.

r_t = E[sign(D(real))] measures how confidently D separates the training images from generated ones. Every
`interval` iterations p moves by `batch_size * interval / (kimg * 1000)` towards more augmentation when
r_t > target and towards less when r_t < target (so p can change by 1 per `kimg` thousand images), with a lower
bound of 0 and no upper bound. Real logits of both the main and the R1 phase count, from every rank.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stylefuse.augment.pipe import AugmentPipe
from stylefuse.errors import ConfigError

MODES = ("ada", "fixed", "noaug")

# Sums a tensor over all ranks, e.g. `lambda t: trainer.strategy.reduce(t, reduce_op="sum")`.
Reduce = Callable[[torch.Tensor], torch.Tensor]


class AdaController(torch.nn.Module):
    """Accumulates the sign statistic and adjusts `AugmentPipe.p`; its counters are buffers, so they checkpoint."""

    def __init__(
        self,
        mode: str = "ada",          # 'ada' = adjust p, 'fixed' = keep p, 'noaug' = no pipe (r_t is still measured).
        target: float = 0.6,        # Target value of r_t.
        interval: int = 4,          # Iterations between adjustments.
        kimg: float = 500,          # Thousands of images for p to move by 1.
        batch_size: int = 64,       # Images per iteration over all ranks.
    ):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown augment mode {mode!r}; use one of {', '.join(MODES)}")
        if interval < 1 or kimg <= 0 or batch_size < 1:
            raise ConfigError(f"ADA needs interval >= 1, kimg > 0 and batch_size >= 1, got interval={interval}, "
                              f"kimg={kimg}, batch_size={batch_size}; fix augment.interval / augment.kimg")
        self.mode = mode
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.batch_size = int(batch_size)
        self.register_buffer("sign_sum", torch.zeros([]))         # Sum of sign(real logits) since the last update.
        self.register_buffer("sign_count", torch.zeros([]))       # Number of real logits since the last update.
        self.register_buffer("rt", torch.full([], float("nan")))  # Last r_t; NaN until the first measurement.

    def extra_repr(self) -> str:
        if self.mode != "ada":
            return f"mode={self.mode}"
        return f"mode={self.mode}, target={self.target:g}, interval={self.interval}, kimg={self.kimg:g}"

    @property
    def adjust_step(self) -> float:
        """Change of p per adjustment."""
        return self.batch_size * self.interval / (self.kimg * 1000)

    @torch.no_grad()
    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Records D's logits on real images [N, 1] (call from the main and the R1 phase)."""
        self.sign_sum += real_logits.detach().sign().sum().to(self.sign_sum)
        self.sign_count += real_logits.numel()

    @torch.no_grad()
    def update(self, pipe: AugmentPipe | None, batch_idx: int, reduce: Reduce | None = None) -> torch.Tensor:
        """Call on every rank after each iteration; `batch_idx` counts the iterations done, this one included.

        Every `interval` iterations: r_t = sum / count over all ranks (the previous r_t when nothing was recorded),
        then in 'ada' mode p <- max(p + sign(r_t - target) * adjust_step, 0). Returns r_t (a 0-d tensor).
        """
        if batch_idx % self.interval == 0:
            stats = torch.stack([self.sign_sum, self.sign_count])  # One collective for both.
            if reduce is not None:
                stats = reduce(stats)
            total, count = stats.unbind()
            self.rt.copy_(torch.where(count > 0, total / count.clamp(min=1), self.rt))
            self.sign_sum.zero_()
            self.sign_count.zero_()
            if self.mode == "ada" and pipe is not None:
                adjust = torch.nan_to_num(torch.sign(self.rt - self.target)) * self.adjust_step  # No r_t yet: keep p.
                pipe.p.copy_((pipe.p + adjust).clamp(min=0))
        return self.rt.clone()
