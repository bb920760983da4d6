"""Detector features of real images (cached on disk) and of generated images, sharded across ranks."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import tqdm

from stylefuse.metrics.features import detector_name
from stylefuse.metrics.options import MetricDataset, MetricOptions
from stylefuse.metrics.stats import FeatureStats
from stylefuse.metrics.stats_cache import stats_cache_file
from stylefuse.utils.images import generated_to_uint8


def gather_rows(x: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """[N, ...] per rank -> [num_gpus * N, ...] on all ranks, interleaved: row i of rank r goes to i * num_gpus + r."""
    if num_gpus == 1:
        return x
    ys = [torch.empty_like(x) for _ in range(num_gpus)]
    torch.distributed.all_gather(ys, x.contiguous())
    return torch.stack(ys, dim=1).flatten(0, 1)


def broadcast_flag(flag: bool, opts: MetricOptions) -> bool:
    """Rank 0's `flag` on every rank."""
    if opts.num_gpus == 1:
        return flag
    t = torch.tensor([float(flag)], device=opts.device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


@torch.no_grad()
def dataset_features(opts: MetricOptions, detector: str, max_items: int | None, capture_all: bool = False,
                     capture_mean_cov: bool = False) -> FeatureStats:
    """Features of the real images of `opts.dataset_kwargs`, loaded from the cache when it has them."""
    dataset = opts.open_dataset()
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    stats_kwargs = dict(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=num_items)
    net = opts.detectors.get(detector, opts.device, opts.rank, opts.num_gpus)
    cache_file = None
    if opts.cache_dir is not None:
        cache_file = stats_cache_file(opts.cache_dir, dataset.name, detector_name(net), opts.dataset_kwargs,
                                      stats_kwargs)
        if broadcast_flag(opts.rank == 0 and os.path.isfile(cache_file), opts):
            return FeatureStats.load(cache_file)

    # Rank r reads items r, r + num_gpus, ...; every rank reads the same count (wrapping), so gathers line up.
    stats = FeatureStats(**stats_kwargs)
    items = [(i * opts.num_gpus + opts.rank) % num_items for i in range((num_items - 1) // opts.num_gpus + 1)]
    loader = torch.utils.data.DataLoader(dataset, sampler=items, batch_size=opts.batch_size,
                                         num_workers=opts.num_workers, pin_memory=opts.device.type == "cuda")
    # Seeded only so that the DataLoader's draw from torch's RNG leaves the caller's stream alone.
    with opts.seeded_torch(), tqdm.tqdm(total=num_items, desc=f"{dataset.name} features ({detector})", unit="img",
                                        disable=not (opts.verbose and opts.rank == 0)) as bar:
        for images, _labels in loader:
            images = images.to(opts.device)
            if images.shape[1] == 1:
                images = images.repeat([1, 3, 1, 1])
            before = stats.num_items
            stats.append(gather_rows(net(images), opts.num_gpus))
            bar.update(stats.num_items - before)
    if cache_file is not None and opts.rank == 0:
        stats.save(cache_file)
    return stats


def sample_labels(opts: MetricOptions, dataset: MetricDataset, num: int, rng: np.random.RandomState) -> torch.Tensor:
    """Labels of `num` random dataset items, [num, label_dim] float32 on the device (c of the generated images)."""
    c = np.stack([dataset.get_label(rng.randint(len(dataset))) for _ in range(num)])
    return torch.from_numpy(c.astype(np.float32)).to(opts.device)


@torch.no_grad()
def generator_features(opts: MetricOptions, detector: str, max_items: int, capture_all: bool = False,
                       capture_mean_cov: bool = False) -> FeatureStats:
    """Features of `max_items` images of `opts.G` (z ~ N(0, I), c = labels of random dataset items)."""
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    dataset = opts.open_dataset()
    net = opts.detectors.get(detector, opts.device, opts.rank, opts.num_gpus)
    rng = opts.rng(stream=0)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=max_items)
    with opts.seeded_torch(), tqdm.tqdm(total=max_items, desc=f"generated features ({detector})", unit="img",
                                        disable=not (opts.verbose and opts.rank == 0)) as bar:
        while not stats.is_full():
            images = []
            for _ in range(opts.batch_size // opts.batch_gen):
                z = torch.randn([opts.batch_gen, G.z_dim], device=opts.device)
                c = sample_labels(opts, dataset, opts.batch_gen, rng)
                images.append(generated_to_uint8(G(z, c)))
            images = torch.cat(images)  # [batch_size, C, H, W] uint8
            if images.shape[1] == 1:
                images = images.repeat([1, 3, 1, 1])
            before = stats.num_items
            stats.append(gather_rows(net(images), opts.num_gpus))
            bar.update(stats.num_items - before)
    return stats
