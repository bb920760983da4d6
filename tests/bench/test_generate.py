"""`python -m stylefuse.bench generate`: its output line (speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

from stylefuse.bench.generate import main as bench_generate


def test_bench_generate_reports_throughput(capsys):
    bench_generate(["--res", "16", "--batch", "2", "--n", "4", "--channel-base", "256", "--channel-max", "16",
                    "--map", "2", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in last.split())
    assert list(fields) == ["img_per_sec", "peak_rss_mb"]
    assert float(fields["img_per_sec"]) > 0 and int(fields["peak_rss_mb"]) > 0
