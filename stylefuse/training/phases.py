"""The four phases of one official iteration and the random inputs they consume.

Gmain (every iteration), Greg (path length, every G_reg_interval), Dmain (every iteration) and Dreg (R1, every
D_reg_interval), in that order. A phase's interval is also the gain of its loss (lazy regularization).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stylefuse.nn import Generator
from stylefuse.training.loss import RoundInputs, StyleGAN2Loss


@dataclass(frozen=True)
class Phase:
    name: str       # 'Gmain', 'Greg', 'Dmain' or 'Dreg'
    network: str    # 'G' or 'D': whose parameters (and optimizer) the phase trains
    interval: int   # Runs when batch_idx % interval == 0; also the gain of its loss (lazy regularization)


def official_phases(G_reg_interval: int, D_reg_interval: int) -> list[Phase]:
    return [Phase("Gmain", "G", 1), Phase("Greg", "G", G_reg_interval), Phase("Dmain", "D", 1),
            Phase("Dreg", "D", D_reg_interval)]


def due_phases(phases: Sequence[Phase], batch_idx: int, loss: StyleGAN2Loss) -> list[Phase]:
    """The phases that run at iteration `batch_idx` (a regularization phase with zero weight never runs)."""
    return [phase for phase in phases if batch_idx % phase.interval == 0 and loss.phase_active(phase.name)]


class PhaseInputSampler:
    """Draws the random inputs of a phase for the GLOBAL batch and hands each rank its own slice.

    Every rank holds an identically seeded generator, so N ranks of batch B/N see exactly the latents, labels, mixing
    cutoffs and path-length noise that one device of batch B sees (rank r gets global samples r, r+N, r+2N, ..., the
    same interleaving as the distributed sampler of the real images).
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.generator: torch.Generator | None = None

    def _rng(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self.generator

    def state_dict(self) -> dict:
        return {"seed": self.seed, "state": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.seed = state["seed"]
        if state["state"] is not None:
            self._rng(device).set_state(state["state"])

    def draw(self, phase: str, G: Generator, batch_size: int, batch_gpu: int, rank: int, world_size: int,
             label_bank: torch.Tensor, style_mixing_prob: float, device: torch.device) -> list[RoundInputs]:
        rng = self._rng(device)
        local = lambda t: t[rank::world_size].split(batch_gpu)  # noqa: E731
        num_rounds = batch_size // (batch_gpu * world_size)

        gen_z = local(torch.randn([batch_size, G.z_dim], generator=rng, device=device))
        if label_bank.shape[0] > 0:
            idx = torch.randint(label_bank.shape[0], [batch_size], generator=rng, device=device)
            gen_c = local(label_bank[idx])
        else:
            gen_c = local(torch.zeros([batch_size, G.c_dim], device=device))

        # Style mixing: one coin flip and one cutoff in [1, num_ws - 1] per round, as officially.
        mix_z: Sequence[torch.Tensor | None] = [None] * num_rounds
        cutoffs: list[int | None] = [None] * num_rounds
        if style_mixing_prob > 0:
            mix_z = local(torch.randn([batch_size, G.z_dim], generator=rng, device=device))
            coins = torch.rand([num_rounds], generator=rng, device=device).tolist()
            draws = torch.randint(1, G.num_ws, [num_rounds], generator=rng, device=device).tolist()
            cutoffs = [cut if coin < style_mixing_prob else None for coin, cut in zip(coins, draws)]

        pl_noise: Sequence[torch.Tensor | None] = [None] * num_rounds
        if phase == "Greg":
            res = G.img_resolution
            noise = torch.randn([batch_size, G.img_channels, res, res], generator=rng, device=device)
            pl_noise = local(noise / math.sqrt(res * res))

        return [RoundInputs(gen_z=z, gen_c=c, mix_z=m, mix_cutoff=cut, pl_noise=n)
                for z, c, m, cut, n in zip(gen_z, gen_c, mix_z, cutoffs, pl_noise)]
