"""`python -m stylefuse.bench train`: its output format and the module it times (speed is measured by the
benchmark, not by tests)."""

from __future__ import annotations

import re

import pytest
import torch

from stylefuse.bench import train as bench_train
from stylefuse.bench.__main__ import main as bench_main

TINY_TRAIN = ["--res", "8", "--batch", "4", "--iters", "2", "--warmup", "1", "--channel-base", "64",
              "--channel-max", "8", "--map", "1"]


@pytest.mark.parametrize("fp16_res", [0, 1])
def test_train_prints_sec_per_kimg_and_peak_rss_last(capsys, fp16_res):
    bench_main(["train", *TINY_TRAIN, "--fp16-res", str(fp16_res)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("bench train: res 8, batch 4, channel_base 64, channel_max 8, map 1, "
                               f"fp16_res {fp16_res}")
    match = re.fullmatch(r"sec/kimg=(\d+\.\d\d) peak_rss_mb=(\d+)", lines[-1])
    assert match, lines[-1]
    assert float(match[1]) > 0 and int(match[2]) > 0


@pytest.mark.slow
def test_train_compiled_reports_the_compilation_apart(capsys):
    threads = torch.get_num_threads()
    try:
        bench_main(["train", *TINY_TRAIN, "--threads", "1", "model.compile=true"])
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("1 threads, 1 + 2 iterations on cpu, main phases compiled")
    assert re.fullmatch(r"first iteration \d+\.\d\d s \(\d+\.\d\d s of CPU time\), compilation included", lines[1])
    assert re.fullmatch(r"sec/kimg=(\d+\.\d\d) peak_rss_mb=(\d+)", lines[-1])


def test_train_module_is_the_one_train_py_builds():
    module, cfg = bench_train.build_bench_module(res=8, batch=4, channel_base=64, channel_max=8, map_layers=1,
                                           fp16_res=0, overrides=["allow_tf32=true"])
    assert cfg.allow_tf32 is True
    assert module.hparams.batch_size == module.hparams.batch_gpu == 4
    assert module.G.z_dim == module.G.w_dim == 512 and module.G.mapping.num_layers == 1
    assert module.G.synthesis.b8.use_fp16 is False and module.G.synthesis.b8.conv1.conv_clamp is None
    assert module.D.b4.mbstd.group_size == 4 and module.D.init_kwargs["architecture"] == "resnet"
    assert module.loss.r1_gamma == 1 and module.loss.pl_weight == 2 and module.loss.style_mixing_prob == 0.9
    assert module.ada.mode == "fixed" and float(module.augment_pipe.p) == pytest.approx(0.2)
    assert module.augment_pipe.extra_repr().startswith("xflip=1, rotate90=1, xint=1, scale=1")
    assert module.hparams.ema_kimg == 10 and module.hparams.ema_rampup == 0.05
    assert module.hparams.fp32_channels_last is None  # the config's default: channels-last while on the CPU


def test_precision_and_layout_overrides_reach_the_networks():
    module, _ = bench_train.build_bench_module(res=16, batch=4, channel_base=64, channel_max=8, map_layers=1,
                                               fp16_res=1,
                                               overrides=["model.fp16_dtype=bfloat16", "model.fp32_channels_last=true"])
    assert module.G.synthesis.b16.fp16_dtype == module.D.b16.fp16_dtype == "bfloat16"
    assert module.hparams.fp32_channels_last is True


def test_fp16_res_keeps_the_preset_clamp():
    module, _ = bench_train.build_bench_module(res=16, batch=4, channel_base=64, channel_max=8, map_layers=1,
                                               fp16_res=2)
    assert module.G.synthesis.b16.use_fp16 and module.G.synthesis.b8.use_fp16
    assert not module.G.synthesis.b4.use_fp16 and module.G.synthesis.b16.conv1.conv_clamp == 256


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["train", *TINY_TRAIN, "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--device cuda, but PyTorch sees no CUDA device here; use --device cpu" in capsys.readouterr().err
