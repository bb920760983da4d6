"""`python -m stylefuse.bench project`: its last line holds rates this run can have had (speed itself is measured by
the benchmark, not by tests)."""

from __future__ import annotations

import re

from stylefuse.bench.project import main as bench_project
from tests.helpers import proc_status_mb


def test_bench_project_line_fits_the_time_and_memory_the_run_took(run_bench):
    out, wall, rss_before = run_bench(bench_project, ["--res", "32", "--batch", "2", "--steps", "2", "--channel-base",
                                                      "512", "--channel-max", "32", "--map", "2", "--device", "cpu"])
    match = re.fullmatch(r"proj_per_min=(\d+\.\d\d) peak_rss_mb=(\d+) batch_speedup=(\d+\.\d\d)", out[-1])
    assert match, out[-1]
    proj_per_min, peak_rss_mb, speedup = float(match[1]), int(match[2]), float(match[3])
    # Both timed runs (2 images one at a time, then as one batch) took part of the call's wall time.
    batched_seconds = 2 / (proj_per_min / 60)
    assert 0 < batched_seconds <= wall
    assert 0 < speedup * batched_seconds <= wall - batched_seconds + 0.01 * batched_seconds
    assert rss_before - 2 <= peak_rss_mb <= proc_status_mb("VmHWM")  # MiB, the kernel's peak
