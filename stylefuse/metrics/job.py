"""The standalone metrics job (`python -m stylefuse.metrics`), like the official calc_metrics.py."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from stylefuse.data.datasets import open_dataset
from stylefuse.errors import ConfigError
from stylefuse.metrics.options import MetricDataset, MetricOptions
from stylefuse.metrics.registry import calc_metric, check_metrics, report_metric
from stylefuse.networks import load_network_pkl
from stylefuse.utils.devices import resolve_device


def real_data(cfg: DictConfig, training_set_kwargs: dict[str, Any] | None) -> tuple[dict[str, Any],
                                                                                      MetricDataset | None]:
    """The real data: the `dataset` config when it is complete, else the network file's training_set_kwargs."""
    if cfg.get("dataset") is not None and not OmegaConf.missing_keys(cfg.dataset):
        dataset, _ = open_dataset(OmegaConf.to_container(cfg.dataset, resolve=True), seed=cfg.seed)
        return dict(dataset.training_set_kwargs), dataset
    if training_set_kwargs is None:
        raise ConfigError("the network file does not say which data it was trained on; "
                          "pass dataset=<option> or dataset.path=<folder or zip>")
    return dict(training_set_kwargs), None


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Computes `cfg.metrics` for `cfg.network`; prints each result line and appends it to metric-<name>.jsonl
    beside the network file (or in the run directory for a URL or pretrained name)."""
    metrics = list(cfg.metrics)
    check_metrics(metrics)
    device = resolve_device(cfg.device)
    network = load_network_pkl(cfg.network, cache_dir=cfg.paths.cache_dir)
    G = network["G_ema"]
    dataset_kwargs, dataset = real_data(cfg, network.get("training_set_kwargs"))
    opts = MetricOptions(G=G, dataset_kwargs=dataset_kwargs, dataset=dataset, device=device,
                         cache_dir=cfg.cache_dir, num_gen=cfg.num_gen, max_real=cfg.max_real, seed=cfg.seed,
                         batch_size=cfg.batch_size, batch_gen=cfg.batch_gen, num_workers=cfg.num_workers,
                         verbose=cfg.verbose)
    # The real images must match the generator, as the official calc_metrics sets them.
    opts = opts.with_dataset(resolution=G.img_resolution, use_labels=G.c_dim != 0)

    path = os.path.abspath(os.path.expanduser(cfg.network))
    local = os.path.isfile(path)
    run_dir = os.path.dirname(path) if local else cfg.paths.output_dir
    results = []
    for metric in metrics:
        result = calc_metric(metric, opts)
        print(report_metric(result, run_dir, snapshot_pkl=path if local else None))
        results.append(result)
    return results
