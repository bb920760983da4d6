"""The metrics by their official names, their computation with timing, and `metric-<name>.jsonl` reports.

Sample counts: `MetricOptions.num_gen` replaces the official number of generated images (50k) and
`MetricOptions.max_real` caps the real images. A metric run with `num_gen` set is reported under a name that says
so: the '50k' of the official name becomes the count (`fid50k_full` with num_gen=1000 -> `fid1k_full`, with 500 ->
`fid500_full`, `pr50k3_full` with 500 -> `pr500_3_full`); PPL names carry no count and stay as they are.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from stylefuse.errors import ConfigError
from stylefuse.metrics.fid import compute_fid
from stylefuse.metrics.inception_score import compute_is
from stylefuse.metrics.kid import compute_kid
from stylefuse.metrics.options import MetricOptions
from stylefuse.metrics.ppl import compute_ppl
from stylefuse.metrics.precision_recall import compute_pr
from stylefuse.metrics.toy import compute_coverage_toy, compute_fid_toy

MetricFn = Callable[[MetricOptions], dict[str, float]]
_METRICS: dict[str, MetricFn] = {}


def register_metric(fn: MetricFn) -> MetricFn:
    _METRICS[fn.__name__] = fn
    return fn


def list_metrics() -> list[str]:
    return list(_METRICS)


def check_metrics(metrics: list[str]) -> None:
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {', '.join(unknown)}; choose from {', '.join(_METRICS)}")


def reported_name(metric: str, num_gen: int | None) -> str:
    """The official name, or with '50k' replaced by the actual count when `num_gen` overrides it."""
    if num_gen is None or "50k" not in metric:
        return metric
    count = f"{num_gen // 1000}k" if num_gen % 1000 == 0 else str(num_gen)
    head, tail = metric.split("50k", 1)
    return f"{head}{count}{'_' if tail[:1].isdigit() and not count.endswith('k') else ''}{tail}"


def format_time(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m"


def calc_metric(metric: str, opts: MetricOptions) -> dict[str, Any]:
    """Computes one metric (all ranks must call it); returns the official result record."""
    check_metrics([metric])
    start = time.time()
    # TF32 would perturb the detectors' features; the official metrics run with it off.
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        results = _METRICS[metric](opts)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    total_time = time.time() - start
    name = reported_name(metric, opts.num_gen)
    results = {key.replace(metric, name, 1): float(value) for key, value in results.items()}
    return dict(results=results, metric=name, total_time=total_time, total_time_str=format_time(total_time),
                num_gpus=opts.num_gpus)


def report_metric(result: dict[str, Any], run_dir: str | None, kimg: float | None = None,
                  snapshot_pkl: str | None = None) -> str:
    """Appends the record as one JSON line to `<run_dir>/metric-<name>.jsonl` (if run_dir exists); returns it."""
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result, kimg=kimg, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f"metric-{result['metric']}.jsonl"), "a") as f:
            f.write(line + "\n")
    return line


# ---------------------------------------------------------------------------------------------------------------------
# ADA paper metrics: against the full dataset without mirroring.

@register_metric
def fid50k_full(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    return dict(fid50k_full=compute_fid(opts, max_real=opts.real_count(None), num_gen=opts.gen_count(50000)))


@register_metric
def kid50k_full(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    kid = compute_kid(opts, max_real=opts.real_count(1000000), num_gen=opts.gen_count(50000), num_subsets=100,
                      max_subset_size=1000)
    return dict(kid50k_full=kid)


@register_metric
def pr50k3_full(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    precision, recall = compute_pr(opts, max_real=opts.real_count(200000), num_gen=opts.gen_count(50000),
                                   nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric
def ppl2_wend(opts: MetricOptions) -> dict[str, float]:
    ppl = compute_ppl(opts, num_samples=opts.gen_count(50000), epsilon=1e-4, space="w", sampling="end", crop=False,
                      batch_size=2)
    return dict(ppl2_wend=ppl)


@register_metric
def is50k(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    mean, std = compute_is(opts, num_gen=opts.gen_count(50000), num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)


# ---------------------------------------------------------------------------------------------------------------------
# StyleGAN / StyleGAN2 paper metrics: 50k reals (mirrored as in training), PPL on the cropped face region.

@register_metric
def fid50k(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None)
    return dict(fid50k=compute_fid(opts, max_real=opts.real_count(50000), num_gen=opts.gen_count(50000)))


@register_metric
def kid50k(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None)
    kid = compute_kid(opts, max_real=opts.real_count(50000), num_gen=opts.gen_count(50000), num_subsets=100,
                      max_subset_size=1000)
    return dict(kid50k=kid)


@register_metric
def pr50k3(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None)
    precision, recall = compute_pr(opts, max_real=opts.real_count(50000), num_gen=opts.gen_count(50000),
                                   nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


def _ppl(opts: MetricOptions, space: str, sampling: str) -> float:
    return compute_ppl(opts, num_samples=opts.gen_count(50000), epsilon=1e-4, space=space, sampling=sampling,
                       crop=True, batch_size=2)


@register_metric
def ppl_zfull(opts: MetricOptions) -> dict[str, float]:
    return dict(ppl_zfull=_ppl(opts, "z", "full"))


@register_metric
def ppl_wfull(opts: MetricOptions) -> dict[str, float]:
    return dict(ppl_wfull=_ppl(opts, "w", "full"))


@register_metric
def ppl_zend(opts: MetricOptions) -> dict[str, float]:
    return dict(ppl_zend=_ppl(opts, "z", "end"))


@register_metric
def ppl_wend(opts: MetricOptions) -> dict[str, float]:
    return dict(ppl_wend=_ppl(opts, "w", "end"))


# ---------------------------------------------------------------------------------------------------------------------
# Toy-face metrics in the space of the shipped toy probe (offline): 5000 generated images against the full dataset.

@register_metric
def fid_toy(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    return dict(fid_toy=compute_fid_toy(opts, max_real=opts.real_count(None), num_gen=opts.gen_count(5000)))


@register_metric
def coverage_toy(opts: MetricOptions) -> dict[str, float]:
    opts = opts.with_dataset(max_size=None, xflip=False)
    coverage = compute_coverage_toy(opts, max_real=opts.real_count(None), num_gen=opts.gen_count(5000))
    mean = sum(value for key, value in coverage.items() if key not in ("coarse", "fine")) / (len(coverage) - 2)
    return dict(coverage_toy=mean, **{f"coverage_toy_{key}": value for key, value in coverage.items()})
