"""Fixtures of the benchmark tests."""

from __future__ import annotations

import time

import pytest

from tests.helpers import proc_status_mb


@pytest.fixture
def run_bench(capsys):
    """Runs a bench job's `main(argv)`; returns its printed lines, the wall time it took and the resident memory
    before it (MiB)."""
    def run(main, argv: list[str]) -> tuple[list[str], float, float]:
        capsys.readouterr()
        rss_before = proc_status_mb("VmRSS")
        start = time.perf_counter()
        main(argv)
        wall = time.perf_counter() - start
        return capsys.readouterr().out.strip().splitlines(), wall, rss_before

    return run
