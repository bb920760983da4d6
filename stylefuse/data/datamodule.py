"""The Lightning data module: builds the configured dataset on demand and serves shuffled per-device batches."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler

from stylefuse.data.datasets import Dataset, DatasetNotFoundError, build_dataset
from stylefuse.errors import ConfigError


class ImageDataModule(pl.LightningDataModule):
    """Real images for GAN training, `(uint8 [B, C, H, W], float32 [B, label_dim])` per device.

    Built by `hydra.utils.instantiate(cfg.dataset, batch_size=<global batch>, seed=<seed>)`. The dataset itself
    is made on first access of `.dataset` (so missing data is reported there, not at instantiation), because the
    trainer reads `dm.dataset.resolution / num_channels / label_dim` before it builds the networks.

    Every epoch is one pass over the data; training length is counted in kimg by the training module, so the
    trainer runs with `max_epochs=-1` and batches keep coming.
    """

    def __init__(self,
        class_name:    str,                # Dataset class, a key of DATASET_CLASSES.
        batch_size:    int,                # Global batch size, split evenly across devices.
        seed:          int = 0,            # Shuffling seed, and the seed of the max_size subset (official --subset).
        name:          str | None = None,  # Short dataset name for run descriptions; None = the dataset's own.
        xflip:         bool = False,       # Official --mirror: append an x-flipped copy of every image.
        use_labels:    bool = False,       # Official --cond: condition on dataset labels.
        max_size:      int | None = None,  # Official --subset: a random subset of this many images.
        num_workers:   int = 0,            # DataLoader worker processes per device.
        pin_memory:    bool = False,       # Pin host memory (only when CUDA is present).
        download_hint: str | None = None,  # How to get the data, shown when the path does not exist.
        **dataset_kwargs: Any,             # The dataset's own arguments (path, resolution, ...).
    ) -> None:
        super().__init__()
        self.class_name = class_name
        self.batch_size = batch_size
        self.seed = seed
        self.xflip = xflip
        self.use_labels = use_labels
        self.max_size = max_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.download_hint = download_hint
        self.dataset_kwargs = dataset_kwargs
        self._name = name
        self._dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        """The training set, built on first access; raises the one-line DatasetError if the data is unusable."""
        if self._dataset is None:
            kwargs = dict(class_name=self.class_name, **self.dataset_kwargs, use_labels=self.use_labels,
                          xflip=self.xflip, max_size=self.max_size, random_seed=self.seed)
            try:
                self._dataset = build_dataset(kwargs)
            except DatasetNotFoundError as err:
                if self.download_hint is None:
                    raise
                raise DatasetNotFoundError(err.path, self.download_hint) from None
        return self._dataset

    @property
    def name(self) -> str:
        return self._name or self.dataset.name

    def setup(self, stage: str) -> None:
        _ = self.dataset  # Fail early, on every rank, with the dataset's own message.

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if self.batch_size % world_size != 0:
            raise ConfigError(f"the global batch size {self.batch_size} cannot be split evenly over {world_size} "
                              f"devices; use a batch size that is a multiple of {world_size}")
        # Explicit sharding: every rank permutes with the same seed (+ epoch, set by Lightning each epoch) and takes
        # every world_size-th index, so a global batch holds the same images for any device count. Lightning keeps
        # a DistributedSampler it is given, with or without use_distributed_sampler.
        sampler = DistributedSampler(self.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=True)
        if len(sampler) < self.batch_size // world_size:
            raise ConfigError(f"{self.name} has {len(self.dataset)} images, fewer than one batch of "
                              f"{self.batch_size // world_size} per device; lower the batch size or add images")
        return DataLoader(self.dataset, batch_size=self.batch_size // world_size, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)
