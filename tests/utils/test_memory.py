"""Memory probes: the peak resident memory is the kernel's high-water mark, in bytes."""

from __future__ import annotations

import numpy as np
import torch

from stylefuse.utils.memory import MB, peak_memory_mb, peak_rss
from tests.helpers import proc_status_mb


def test_peak_rss_is_the_kernels_high_water_mark_in_bytes():
    touched = np.ones(200 * MB // 8)  # 200 MiB resident now: the peak is at least that much above nothing
    rss_now = proc_status_mb("VmRSS")
    peak = peak_rss() / MB
    assert rss_now - 2 <= peak <= proc_status_mb("VmHWM")  # the kernel updates ru_maxrss lazily, by < 1 MiB
    assert peak >= 200 and touched.sum() > 0
    fields = peak_memory_mb(torch.device("cpu"))
    assert list(fields) == ["peak_rss_mb"] and abs(fields["peak_rss_mb"] - peak) <= 2
