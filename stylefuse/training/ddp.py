"""Multi-GPU training that computes exactly what one device computes on the whole batch.

Lightning's stock DDP wraps the whole LightningModule in one DistributedDataParallel; with four phases per batch
that each train only G or only D, several backward passes per forward and lazily-used parameters, its reducer needs
`find_unused_parameters` and still syncs at the wrong moments. Like the official StyleGAN3 loop, we do not wrap:
the strategy broadcasts rank 0's weights once and the training module averages each phase's gradients itself with
one flat all-reduce (`all_reduce_gradients`) before cleaning NaN/Inf and stepping. Everything else (process launch,
the distributed sampler, collectives, checkpointing on rank 0) is Lightning's DDPStrategy. The collectives the
iteration needs live here too; on one process they are identities.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
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


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over all ranks (a copy; the input is left alone)."""
    if is_distributed():
        value = value.clone()
        dist.all_reduce(value)
    return value


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    return reduce_sum(value) / dist.get_world_size() if is_distributed() else value


def all_gather_object(obj: object) -> list:
    """Every rank's `obj` (picklable), indexed by rank; `[obj]` on one process."""
    if not is_distributed():
        return [obj]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_gradients(params: list[torch.nn.Parameter]) -> None:
    """Averages the gradients of `params` over all ranks with one flat all-reduce, in place."""
    if not is_distributed() or not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.reshape(p.shape))


def check_replicas_in_sync(named_tensors: Iterable[tuple[str, torch.Tensor]], rank_local: set[str]) -> None:
    """Raises if any rank's tensor drifted from rank 0's (weights and buffers must stay bit-identical); the names in
    `rank_local` hold per-rank values by design and are not compared."""
    if not is_distributed():
        return
    for name, tensor in named_tensors:
        if tensor.numel() == 0 or name in rank_local:
            continue
        tensor = tensor.detach()
        reference = tensor.clone()
        dist.broadcast(reference, src=0)
        same_nans = torch.equal(tensor.isnan(), reference.isnan())  # NaN is a value here (r_t before the first)
        if not (same_nans and torch.equal(tensor.nan_to_num(), reference.nan_to_num())):
            raise RuntimeError(f"ranks disagree on {name} (rank {dist.get_rank()}): distributed training is out "
                               f"of sync; please report this with the run's config")
