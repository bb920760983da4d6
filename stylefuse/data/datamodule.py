"""The Lightning data module: shuffled per-device batches of a training set, one global batch across devices."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from stylefuse.data.datasets import Dataset
from stylefuse.data.sampler import InfiniteSampler


class ImageDataModule(pl.LightningDataModule):
    """Real images for GAN training, `(uint8 [B, C, H, W], float32 [B, label_dim])` per device, without end.

    Training length is counted in kimg by the training module, so the trainer runs one endless epoch
    (`max_epochs=-1`, `use_distributed_sampler=False`: the sampler shards the stream itself). The position in the
    stream is part of the checkpoint, so a resumed run sees the images the uninterrupted one would have seen.
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
        self.position = 0  # images of the stream handed to the training step so far, over all ranks

    def state_dict(self) -> dict:
        return {"seed": self.seed, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.position = int(state["seed"]), int(state["position"])

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Counted when a batch reaches the training step: the loader itself runs ahead (prefetching, workers), so
        # only here does the position say which image the next iteration gets.
        self.position += self.batch_size
        return batch

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = InfiniteSampler(len(self.dataset), rank=rank, world_size=world_size, seed=self.seed,
                                  start=self.position)
        # Its own generator (for the workers' seeds): starting a loader never draws from the training's RNG.
        return DataLoader(self.dataset, batch_size=self.batch_size // world_size, sampler=sampler,
                          num_workers=self.num_workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))
