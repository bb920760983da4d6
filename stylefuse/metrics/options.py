"""What every metric needs to run: the generator, the real data, detectors, device, ranks and sample counts."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch

from stylefuse.data.datasets import build_dataset
from stylefuse.errors import ConfigError
from stylefuse.metrics.features import Detectors


class MetricDataset(Protocol):
    """The dataset interface the metrics use (that of `stylefuse.data`)."""

    name: str
    training_set_kwargs: dict[str, Any]

    def __len__(self) -> int: ...
    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]: ...  # uint8 [C, H, W], float32 [label_dim]
    def get_label(self, idx: int) -> np.ndarray: ...


@dataclasses.dataclass
class MetricOptions:
    """Inputs of one metric computation; every rank of a multi-GPU run passes its own `rank` and calls each metric."""

    G: torch.nn.Module                                   # Generator to evaluate (G_ema); copied, never modified.
    dataset_kwargs: dict[str, Any]                       # training_set_kwargs of the real data: cache key and rebuild.
    detectors: Detectors = dataclasses.field(default_factory=Detectors)  # Inception, VGG16, LPIPS (or test stand-ins).
    dataset: MetricDataset | None = None                 # Already built dataset, reused when its kwargs match.
    dataset_cache: dict[str, MetricDataset] = dataclasses.field(default_factory=dict)  # Datasets built so far.
    dataset_factory: Callable[[dict[str, Any]], MetricDataset] = build_dataset  # Builds data for other kwargs.
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    num_gpus: int = 1                                    # Ranks taking part (torch.distributed initialized if > 1).
    rank: int = 0                                        # This process's rank.
    cache_dir: str | None = None                         # Real stats cached in <cache_dir>/gan-metrics; None = off.
    num_gen: int | None = None                           # Generated samples per metric; None = the official count.
    max_real: int | None = None                          # Upper bound on real images; None = the official one.
    seed: int = 0                                        # Seeds latents, labels and KID subsets (plus rank).
    batch_size: int = 64                                 # Images per rank per detector call.
    batch_gen: int = 4                                   # Images per generator call.
    num_workers: int = 0                                 # DataLoader workers for the real images.
    verbose: bool = True                                 # Progress bars (rank 0).

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.num_gpus:
            raise ConfigError(f"rank {self.rank} is outside 0..{self.num_gpus - 1}; check the distributed setup")
        if self.batch_size % self.batch_gen != 0:
            raise ConfigError(f"metrics batch_size {self.batch_size} is not a multiple of batch_gen {self.batch_gen}; "
                              f"change one of them")
        self.device = torch.device(self.device)

    def with_dataset(self, **overrides: Any) -> MetricOptions:
        """The same options on real data with some kwargs replaced (e.g. `xflip=False, max_size=None`).

        Only kwargs the dataset has are replaced: a dataset without `xflip` or `max_size` never mirrors or subsets.
        """
        opts = copy.copy(self)
        opts.dataset_kwargs = dict(self.dataset_kwargs)
        opts.dataset_kwargs.update({k: v for k, v in overrides.items() if k in self.dataset_kwargs})
        return opts

    def open_dataset(self) -> MetricDataset:
        """The real data for `dataset_kwargs`: the given dataset when its kwargs match, else built once."""
        if self.dataset is not None and self.dataset.training_set_kwargs == self.dataset_kwargs:
            return self.dataset
        key = repr(sorted(self.dataset_kwargs.items()))
        if key not in self.dataset_cache:
            self.dataset_cache[key] = self.dataset_factory(self.dataset_kwargs)
        return self.dataset_cache[key]

    def gen_count(self, official: int) -> int:
        return official if self.num_gen is None else self.num_gen

    def real_count(self, official: int | None) -> int | None:
        if self.max_real is None:
            return official
        return self.max_real if official is None else min(official, self.max_real)

    def rng(self, stream: int) -> np.random.RandomState:
        """A NumPy generator per (seed, rank, stream): reproducible, and different on every rank."""
        return np.random.RandomState([self.seed, self.rank, stream])

    @contextlib.contextmanager
    def seeded_torch(self) -> Iterator[None]:
        """Torch's RNG seeded per (seed, rank) inside, restored afterwards: the same latents and noise at every
        evaluation, and training draws the same random numbers with or without metrics. Every pass that draws
        random numbers runs inside one of its own, so a cached real pass does not shift the generated samples."""
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            seed = int(self.rng(stream=99).randint(2**31))
            torch.random.default_generator.manual_seed(seed)
            if cuda:  # only the metrics device: other GPUs' generators are not restored by fork_rng
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(seed)
            yield
