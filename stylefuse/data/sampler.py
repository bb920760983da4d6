"""The order in which training sees the images: an endless stream that can restart at any position."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class InfiniteSampler(Sampler[int]):
    """Dataset indices forever, one shard per rank, resumable at any position.

    Position i of the global stream (counting the images of all ranks) holds image `perm_e[i % n]`, where `perm_e`
    is epoch `e = i // n`'s seeded permutation of the n images: every image once per epoch, a new order each epoch,
    batches running on across epoch boundaries (like the official infinite sampler, and unlike Lightning's epochs,
    which restart on resume). Rank r takes positions r, r + N, r + 2N, ... of the stream, so that a global batch
    holds the same images for any number of ranks. The stream is a function of (seed, position) alone: starting at
    `start` (the images already consumed, a multiple of the global batch) continues exactly where a run stopped.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start: int = 0):
        assert size > 0 and 0 <= rank < world_size and start >= 0
        self.size = size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.start = start

    def permutation(self, epoch: int) -> list[int]:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def __iter__(self) -> Iterator[int]:
        position = self.start + self.rank
        epoch, order = -1, []
        while True:
            e, i = divmod(position, self.size)
            if e != epoch:
                epoch, order = e, self.permutation(e)
            yield order[i]
            position += self.world_size
