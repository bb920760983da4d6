"""`bench project`: projections per minute of the projector, one batch against one image at a time.

    python -m stylefuse.bench project --res 256 --batch 8 --steps 100 --device cuda

A random-weight generator of the given sizes projects `batch` images it generated itself, `steps` steps each, with
the official projector config (conf/projector/w.yaml) except for LPIPS's VGG trunk, which is random so that nothing
is downloaded (its weights do not change the cost). The images are projected twice, one at a time and as one batch,
after an untimed two-step warm-up of both; W statistics and LPIPS setup are not timed. Last line:
`proj_per_min=<float> peak_rss_mb=<int> batch_speedup=<float>` (batched run; plus `peak_cuda_mb=<int>` on GPU).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from stylefuse.bench.generator import add_generator_flags, random_generator
from stylefuse.cli import compose_config
from stylefuse.projection import Projector, render
from stylefuse.projection.job import build_projector
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.memory import peak_memory_mb


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="bench project", description=__doc__.splitlines()[0])
    add_generator_flags(parser)
    parser.add_argument("--batch", type=int, default=8, help="images projected together (and one at a time)")
    parser.add_argument("--steps", type=int, default=100, help="optimization steps per projection")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    torch.manual_seed(0)
    G = random_generator(args, device)
    cfg = compose_config("project", ["projector=w", f"projector.num_steps={args.steps}",
                                     "projector.lpips_model.pnet_rand=true"])
    projector = build_projector(G, cfg.projector, device)
    target = render(G, G.mapping(torch.randn([args.batch, G.z_dim], device=device), None))
    print(f"bench project: res {args.res}, batch {args.batch}, {args.steps} steps, channel_base {args.channel_base}, "
          f"channel_max {args.channel_max}, map {args.map}, num_ws {G.num_ws}, on {device}")

    _warm_up(projector, target)
    single = _timed(projector, [target[i:i + 1] for i in range(args.batch)], device)
    batched = _timed(projector, [target], device)
    speedup = single["seconds"] / batched["seconds"]
    for name, run in (("one at a time", single), ("batched", batched)):
        cuda = f", peak CUDA {run['peak_cuda_mb']} MB" if "peak_cuda_mb" in run else ""
        print(f"{name}: {run['seconds']:.2f} s, {args.batch / run['seconds'] * 60:.2f} projections/min, "
              f"peak RSS {run['peak_rss_mb']} MB{cuda}")
    print(f"batching speed-up: {speedup:.2f}x")

    result = {"proj_per_min": args.batch / batched["seconds"] * 60, "peak_rss_mb": batched["peak_rss_mb"],
              "batch_speedup": speedup, "proj_per_min_single": args.batch / single["seconds"] * 60}
    line = f"proj_per_min={result['proj_per_min']:.2f} peak_rss_mb={result['peak_rss_mb']} batch_speedup={speedup:.2f}"
    if device.type == "cuda":
        result["peak_cuda_mb"] = batched["peak_cuda_mb"]
        line += f" peak_cuda_mb={result['peak_cuda_mb']}"
    print(line)
    return result


def _warm_up(projector: Projector, target: torch.Tensor) -> None:
    """Two steps at both batch sizes: allocator growth and kernel selection stay out of the timings."""
    num_steps = projector.num_steps
    projector.num_steps = 2
    projector.project(target[:1], progress=False)
    projector.project(target, progress=False)
    projector.num_steps = num_steps


def _timed(projector: Projector, batches: list[torch.Tensor], device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for target in batches:
        projector.project(target, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"seconds": time.perf_counter() - start, **peak_memory_mb(device)}  # RSS: the process's peak
