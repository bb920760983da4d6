"""Multi-GPU training that computes exactly what one device computes on the whole batch.

Lightning's stock DDP wraps the whole LightningModule in one DistributedDataParallel; with four phases per batch
that each train only G or only D, several backward passes per forward and lazily-used parameters, its reducer needs
`find_unused_parameters` and still syncs at the wrong moments. Like the official StyleGAN3 loop, we do not wrap:
the module broadcasts rank 0's weights once and averages each phase's gradients itself with one flat all-reduce
(`StyleGAN2Module._finish_gradients`) before cleaning NaN/Inf and stepping. Everything else (process launch, the
distributed sampler, collectives, checkpointing on rank 0) is Lightning's DDPStrategy.
"""

from __future__ import annotations

import itertools

import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy


class GradientAllReduceStrategy(DDPStrategy):
    """DDPStrategy without the DDP wrapper: the training module reduces its gradients per phase."""

    strategy_name = "stylegan_ddp"

    def configure_ddp(self) -> None:
        assert self.model is not None
        # Every rank starts from rank 0's weights and buffers (what the DDP wrapper would have broadcast).
        for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
            dist.broadcast(tensor.data, src=0)


def make_strategy(strategy: str | object, world_size: int, start_method: str = "popen") -> str | object:
    """The strategy for `world_size` processes: ours whenever training is distributed and no other was chosen."""
    if world_size <= 1 or strategy not in ("auto", "ddp", "ddp_spawn"):
        return strategy
    if strategy == "ddp_spawn":
        start_method = "spawn"
    return GradientAllReduceStrategy(start_method=start_method)
