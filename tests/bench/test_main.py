"""`python -m stylefuse.bench`: dispatch to the jobs and the usage error."""

from __future__ import annotations

import sys
import types

import pytest

from stylefuse.bench.__main__ import main as bench_main


def test_project_and_generate_dispatch(monkeypatch):
    calls = []
    for job in ("project", "generate"):
        fake = types.ModuleType(f"stylefuse.bench.{job}")
        fake.main = lambda argv, job=job: calls.append((job, argv))
        monkeypatch.setitem(sys.modules, f"stylefuse.bench.{job}", fake)
    bench_main(["project", "--n", "2"])
    bench_main(["generate", "--res", "8"])
    assert calls == [("project", ["--n", "2"]), ("generate", ["--res", "8"])]


def test_unknown_job_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["fly"])
    assert exit_info.value.code == 2
    assert "usage: python -m stylefuse.bench train|project|generate" in capsys.readouterr().err
