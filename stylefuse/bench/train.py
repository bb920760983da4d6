"""`bench train`: sec/kimg of the training iteration that train.py runs.

    python -m stylefuse.bench train --res 64 --batch 16 --iters 16 --warmup 2 --channel-base 4096 --channel-max 128
    python -m stylefuse.bench train --res 256 --batch 64 --channel-base 16384 --channel-max 512 --map 8 \\
        --device cuda --fp16-res 4 allow_tf32=true

`train` times the training iteration that `train.py` runs: the module is built from the composed `train` config by
`stylefuse.training.builders.build_module` (preset `paper256` with the sizes given here, ADA `bgc` pipe at a fixed
p = 0.2, style mixing 0.9, path length weight 2, R1 gamma 1, G_ema), and each iteration is the module's own
`due_phases` + `draw_phase_inputs` + `run_iteration` with its own optimizers, on random real images. The schedule
mirrors the official step bench (`official_step_bench.py`): `warmup` untimed iterations with batch_idx 1, 2, ...
(main phases only), then `iters` timed ones with batch_idx 0, 1, ... (Greg every 4, Dreg every 16). Trailing
`key=value` words are Hydra overrides of the `train` config (e.g. `allow_tf32=true`, `model.compile=true`: the first
warm-up iteration then compiles the main phases, and is reported apart). Last line:
`sec/kimg=<float> peak_rss_mb=<int>` (plus `peak_cuda_mb=<int> tflops=<float>` on GPU).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from stylefuse.cli import CONF_DIR
from stylefuse.training.builders import build_module, configure_backends
from stylefuse.training.compile import MainPhaseForwards
from stylefuse.training.module import StyleGAN2Module
from stylefuse.utils.memory import peak_memory_mb


def build_bench_module(res: int, batch: int, channel_base: int, channel_max: int, map_layers: int, fp16_res: int,
                       overrides: Sequence[str] = ()) -> tuple[StyleGAN2Module, DictConfig]:
    """The training module `train.py` would build for these sizes, and the composed config it was built from."""
    precision = ["model.fp32=true"] if fp16_res == 0 else [f"model.num_fp16_res={fp16_res}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            "model=paper256", f"model.batch_size={batch}", f"model.batch_gpu={batch}", "model.mbstd_group=4",
            f"model.channel_base={channel_base}", f"model.channel_max={channel_max}", f"model.map_layers={map_layers}",
            "model.gamma=1", "model.ema_kimg=10", "model.ema_rampup=0.05", *precision,
            "augment=fixed", "augment.p=0.2", "seed=0", *overrides])
    dataset = SimpleNamespace(resolution=res, num_channels=3, label_dim=0, training_set_kwargs={})
    torch.manual_seed(cfg.seed)
    return build_module(cfg, dataset, world_size=1, transfer=False), cfg


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="bench train", description="sec/kimg of the training iteration")
    parser.add_argument("--res", type=int, default=64, help="image resolution (power of two)")
    parser.add_argument("--batch", type=int, default=16, help="images per iteration (= batch_gpu)")
    parser.add_argument("--iters", type=int, default=16, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (main phases only)")
    parser.add_argument("--channel-base", type=int, default=4096, help="G and D channel_base")
    parser.add_argument("--channel-max", type=int, default=128, help="G and D channel_max")
    parser.add_argument("--map", type=int, default=2, help="mapping layers")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--fp16-res", type=int, default=0, help="float16 in the N highest resolutions (0 = fp32)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (num_threads), 0 = torch's default")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the train config, e.g. allow_tf32=true")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but PyTorch sees no CUDA device here; use --device cpu")
    threads = [f"num_threads={args.threads}"] if args.threads else []
    module, cfg = build_bench_module(args.res, args.batch, args.channel_base, args.channel_max, args.map,
                                     args.fp16_res, [*threads, *args.overrides])
    configure_backends(cfg.cudnn_benchmark, cfg.allow_tf32, cfg.num_threads)
    module = module.to(device)
    module.configure_layout(device)
    module.configure_compile(device)
    opt_G, opt_D = module.configure_optimizers()
    optimizers = {"G": opt_G, "D": opt_D}
    real_img = torch.rand([args.batch, 3, args.res, args.res], device=device) * 2 - 1
    real_c = torch.zeros([args.batch, 0], device=device)
    print(f"bench train: res {args.res}, batch {args.batch}, channel_base {args.channel_base}, channel_max "
          f"{args.channel_max}, map {args.map}, fp16_res {args.fp16_res}, {torch.get_num_threads()} threads, "
          f"{args.warmup} + {args.iters} iterations on {device}, main phases "
          f"{'compiled' if module.main_forwards.compiled else 'eager'}")

    def iteration(batch_idx: int) -> None:
        inputs = module.draw_phase_inputs(module.due_phases(batch_idx), rank=0, world_size=1)
        module.run_iteration(real_img, real_c, inputs, optimizers)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # The first iteration compiles the main phases' graphs (when compiled): timed apart, as the price paid once.
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(args.warmup):
        iteration(i + 1)
        synchronize()
        if i == 0:
            first, cpu_first = time.perf_counter() - start, time.process_time() - cpu_start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(args.iters):
        iteration(i)
    synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    result = {"sec_per_kimg": seconds / (args.iters * args.batch / 1000), **peak_memory_mb(device)}
    line = f"sec/kimg={result['sec_per_kimg']:.2f} peak_rss_mb={result['peak_rss_mb']}"
    if device.type == "cuda":
        result["tflops"] = _schedule_flops(module, iteration, args.iters) / seconds / 1e12
        line += f" peak_cuda_mb={result['peak_cuda_mb']} tflops={result['tflops']:.1f}"
    if args.warmup:
        print(f"first iteration {first:.2f} s ({cpu_first:.2f} s of CPU time)"
              + (", compilation included" if module.main_forwards.compiled else ""))
    print(f"{seconds:.2f} s ({cpu_seconds:.2f} s of CPU time) for {args.iters} iterations of {args.batch} images")
    print(line)
    return result


def _schedule_flops(module: StyleGAN2Module, iteration, iters: int) -> float:
    """Floating-point operations of the timed schedule: each distinct set of due phases counted once, untimed."""
    from torch.utils.flop_counter import FlopCounterMode

    # Counted on the eager forwards: the same arithmetic, without tracing compiled graphs under the counter.
    forwards, module.main_forwards = module.main_forwards, MainPhaseForwards(module.G, module.D, compiled=False)
    patterns: Counter[tuple[str, ...]] = Counter()
    first_idx: dict[tuple[str, ...], int] = {}
    for i in range(iters):
        due = tuple(phase.name for phase in module.due_phases(i))
        patterns[due] += 1
        first_idx.setdefault(due, i)
    total = 0.0
    for due, count in patterns.items():
        with FlopCounterMode(display=False) as counter:
            iteration(first_idx[due])
        total += counter.get_total_flops() * count
    module.main_forwards = forwards
    return total
