"""`python -m stylefuse.bench project`: its last line holds times and qualities this run can have had (speed itself
is measured by the benchmark, not by tests)."""

from __future__ import annotations

import math
import os
import re

import pytest

from stylefuse.bench.project import main as bench_project
from tests.helpers import proc_status_mb

TINY = ["--res", "32", "--channel-base", "512", "--channel-max", "32", "--map", "2", "--batch", "2", "--device", "cpu",
        "--official-steps", "2", "projector.num_steps=4", "projector.stages=[[16,0.5],[null,0.5]]"]
LINE = (r"official_s_per_image=(\d+\.\d) fast_s_per_image=(\d+\.\d) speedup=(\d+\.\d\d) cpu_speedup=(\d+\.\d\d) "
        r"fast_psnr256=(\d+\.\d\d) fast_lpips=(\d\.\d{4})(?P<nvidia> nvidia_s_per_image=\d+\.\d "
        r"nvidia_speedup=\d+\.\d\d)? peak_rss_mb=(?P<rss>\d+)")


def test_bench_project_line_fits_the_time_and_memory_the_run_took(run_bench):
    out, wall, rss_before = run_bench(bench_project, TINY)
    match = re.fullmatch(LINE, out[-1])
    assert match and not match["nvidia"], out[-1]
    official, fast, speedup = float(match[1]), float(match[2]), float(match[3])
    # The official mode ran 2 of its 1000 steps per round, the fast preset all 4 of its own: both within the call.
    assert 0 < official * 2 * 2 / 1000 + fast * 2 <= wall
    assert math.isclose(speedup, official / fast, rel_tol=0.1)  # the printed times are rounded to 0.1 s
    assert 5 < float(match[5]) < 60 and 0 < float(match[6]) < 1
    assert rss_before - 2 <= int(match["rss"]) <= proc_status_mb("VmHWM")  # MiB, the kernel's peak
    assert any("100 at" in line or "2 at 16, 2 at 32" in line for line in out)  # the schedule is shown


@pytest.mark.skipif(not os.environ.get("STYLEFUSE_OFFICIAL"),
                    reason="set STYLEFUSE_OFFICIAL to an NVlabs/stylegan2-ada-pytorch checkout to compare with it")
def test_bench_project_times_the_official_code(run_bench):
    out, wall, _ = run_bench(bench_project, [*TINY, "--official-code", os.environ["STYLEFUSE_OFFICIAL"]])
    match = re.fullmatch(LINE, out[-1])
    assert match and match["nvidia"], out[-1]
    nvidia = float(re.search(r"nvidia_s_per_image=(\d+\.\d)", out[-1])[1])
    assert 0 < nvidia * 2 * 2 / 1000 <= wall  # 2 steps of each image, timed in the other process
