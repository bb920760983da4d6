"""The Lightning data module: shuffled per-device batches of a training set, one global batch across devices."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler

from stylefuse.data.datasets import Dataset
from stylefuse.errors import ConfigError


class ImageDataModule(pl.LightningDataModule):
    """Real images for GAN training, `(uint8 [B, C, H, W], float32 [B, label_dim])` per device.

    Every epoch is one pass over the data; training length is counted in kimg by the training module, so the
    trainer runs with `max_epochs=-1` and batches keep coming.
    """

    def __init__(self,
        dataset:     Dataset,         # The training set.
        batch_size:  int,             # Global batch size, split evenly across devices (checked by the builders).
        seed:        int = 0,         # Shuffling seed.
        num_workers: int = 0,         # DataLoader worker processes per device.
        pin_memory:  bool = False,    # Pin host memory (only when CUDA is present).
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        # Explicit sharding: every rank permutes with the same seed (+ epoch, set by Lightning each epoch) and takes
        # every world_size-th index, so a global batch holds the same images for any device count. Lightning keeps
        # a DistributedSampler it is given, with or without use_distributed_sampler.
        sampler = DistributedSampler(self.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=True)
        if len(sampler) < self.batch_size // world_size:
            raise ConfigError(f"{self.dataset.name} has {len(self.dataset)} images, fewer than one batch of "
                              f"{self.batch_size // world_size} per device; lower the batch size or add images")
        return DataLoader(self.dataset, batch_size=self.batch_size // world_size, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)
