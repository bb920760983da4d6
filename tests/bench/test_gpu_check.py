"""`bench gpu-check`: its smoke test and its parts run here on the CPU (the numbers it measures need a GPU)."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from stylefuse.bench import gpu_check
from stylefuse.bench.__main__ import main as bench_main
from stylefuse.training.module import StyleGAN2Module


def test_smoke_runs_every_phase_with_float16_and_clamping():
    stats = gpu_check.smoke(torch.device("cpu"), compiled=False, res=8, batch=8)
    for name in ("loss/G", "loss/G_reg", "loss/D", "loss/D_reg", "scores/real", "scores/fake"):
        assert name in stats and math.isfinite(stats[name]), name
    assert stats["loss/G_reg"] > 0 and stats["loss/D_reg"] > 0


def test_smoke_reports_non_finite_weights(monkeypatch):
    run_iteration = StyleGAN2Module.run_iteration

    def poisoned(module, *args):
        run_iteration(module, *args)
        with torch.no_grad():
            module.D.b4.out.weight[0, 0] = math.inf

    monkeypatch.setattr(StyleGAN2Module, "run_iteration", poisoned)
    with pytest.raises(RuntimeError, match=r"non-finite values after one iteration \(eager\): D.b4.out.weight"):
        gpu_check.smoke(torch.device("cpu"), compiled=False, res=8, batch=8)


def test_runs_are_read_from_their_last_line(tmp_path):
    ok = gpu_check.run_and_parse([sys.executable, "-c", "print('x'); print('sec/kimg=1.50 peak_cuda_mb=7')"],
                                 timeout=60, cwd=tmp_path)
    assert ok["sec/kimg"] == "1.50" and ok["peak_cuda_mb"] == "7" and "seconds" in ok
    failed = gpu_check.run_and_parse([sys.executable, "-c", "raise SystemExit('no kernels')"], timeout=60,
                                     cwd=tmp_path)
    assert failed == {"error": "exit 1: no kernels"}


def test_official_run_is_skipped_without_the_official_code(tmp_path, capsys):
    args = gpu_check.build_parser().parse_args(["--official", str(tmp_path)])
    assert gpu_check.official_line(args, timeout=1) == {"skipped": f"no official code at {tmp_path} (--official PATH)"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_without_cuda_it_says_how_to_try_the_script(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["gpu-check"])
    assert exit_info.value.code == 2
    assert "PyTorch sees no CUDA device here (run this on a GPU machine, or --device cpu" in capsys.readouterr().err


def test_the_runs_fit_the_budget(capsys):
    status = gpu_check.main(["--device", "cpu", "--smoke-res", "8", "--no-compile", "--budget", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and lines[-1] == "gpu-check: all checks passed"
    assert lines[1].startswith("smoke eager: Gmain Greg Dmain Dreg finite with float16 blocks and conv_clamp 256")
    rows = [line for line in lines if line.startswith("| ours") or line.startswith("| official")]
    assert [row.split(" | ")[0] for row in rows] == ["| ours, float16 x4, eager", "| ours, float32, eager",
                                                    "| official CUDA kernels, float32"]
    assert all("skipped: --budget 0 s spent" in row for row in rows)
