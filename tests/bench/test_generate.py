"""`python -m stylefuse.bench generate`: its last line holds a rate this run can have had (speed itself is measured
by the benchmark, not by tests)."""

from __future__ import annotations

import re

from stylefuse.bench.generate import main as bench_generate
from tests.helpers import proc_status_mb


def test_bench_generate_line_fits_the_time_and_memory_the_run_took(run_bench):
    out, wall, rss_before = run_bench(bench_generate, ["--res", "16", "--batch", "2", "--n", "4", "--channel-base",
                                                       "256", "--channel-max", "16", "--map", "2", "--device", "cpu"])
    match = re.fullmatch(r"img_per_sec=(\d+\.\d\d) peak_rss_mb=(\d+)", out[-1])
    assert match, out[-1]
    img_per_sec, peak_rss_mb = float(match[1]), int(match[2])
    assert out[-2].endswith("s for 2 batches")  # 4 images in batches of 2, after an untimed warm-up batch
    seconds = float(out[-2].split()[0])
    assert 0 < seconds <= wall
    # The printed seconds are rounded to 1 ms and the rate to 0.01: the rate must lie in the range they allow.
    assert 4 / (seconds + 0.0005) - 0.006 <= img_per_sec <= 4 / max(seconds - 0.0005, 1e-9) + 0.006
    assert rss_before - 2 <= peak_rss_mb <= proc_status_mb("VmHWM")  # MiB, the kernel's peak
