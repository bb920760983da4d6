"""`python -m stylefuse.bench project`: its output line (speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

from stylefuse.bench.project import main as bench_project


def test_bench_project_reports_rates(capsys):
    result = bench_project(["--res", "32", "--batch", "2", "--steps", "2", "--channel-base", "512",
                            "--channel-max", "32", "--map", "2", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"proj_per_min={result['proj_per_min']:.2f} peak_rss_mb={result['peak_rss_mb']} "
                    f"batch_speedup={result['batch_speedup']:.2f}")
    assert result["proj_per_min"] > 0 and result["peak_rss_mb"] > 0 and result["batch_speedup"] > 0
