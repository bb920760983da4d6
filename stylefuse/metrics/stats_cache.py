"""On-disk cache of real-image statistics: one file per (dataset kwargs, detector, statistics options)."""

from __future__ import annotations

import hashlib
import os
from typing import Any


def stats_cache_file(cache_dir: str, dataset_name: str, detector_name: str, dataset_kwargs: dict[str, Any],
                     stats_kwargs: dict[str, Any]) -> str:
    """`<cache_dir>/gan-metrics/<dataset>-<detector>-<md5>.pt`; the md5 covers everything the statistics depend on."""
    args = dict(dataset_kwargs=dataset_kwargs, detector=detector_name, stats_kwargs=stats_kwargs)
    md5 = hashlib.md5(repr(sorted(args.items())).encode("utf-8")).hexdigest()
    return os.path.join(os.path.expanduser(cache_dir), "gan-metrics", f"{dataset_name}-{detector_name}-{md5}.pt")
