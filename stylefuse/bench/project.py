"""`bench project`: seconds per image of the official projector and of a fast preset, side by side.

    python -m stylefuse.bench project --official-code /tmp/official      # FFHQ-1024 shapes, a fusion's two images
    python -m stylefuse.bench project --res 128 --official-steps 1000   # a small network: official in full, quality

A random-weight generator of the given sizes (z = w = 512) projects `batch` images it generated itself, all in one
batch, with the official projector (conf/projector/w.yaml, our code, bit for bit NVIDIA's) and with a fast preset
(`--fast`, conf/projector/w_fast.yaml), alternately, `--rounds` times (this machine may be shared: only numbers
from one command compare; `--threads 1` gives the steadiest CPU seconds). With `--official-code`, NVIDIA's own
projector.py is timed too, in its own process, on the same weights and targets, one image at a time as it runs
(stylefuse/bench/official_project.py). LPIPS's VGG trunk is random, so that nothing is downloaded; its cost is that
of the real one.

The official mode costs the same at every step, so it runs `--official-steps` of its steps and is scaled to all of
them; with `--official-steps` equal to its step count it runs in full and its quality is reported too. The fast
preset runs in full, its start search included, and its own estimate (what the jobs print before they start) is
shown beside it; with `--fast-estimate` (large networks on a slow machine) the estimate alone is its time. W
statistics and LPIPS setup are not timed. Quality: PSNR and LPIPS of the projection (rendered as proj.png is)
against the target on the 256x256 comparison (area-downsampled above 256), and PSNR at full resolution. On random
weights these say how well the optimizer inverts the network, not how a face looks. Trailing `key=value` words are
Hydra overrides of the fast preset (e.g. `projector.num_steps=150`). Last line: `official_s_per_image=<f>
fast_s_per_image=<f> speedup=<f> cpu_speedup=<f>` (wall seconds; cpu_speedup from CPU seconds), then
`fast_psnr256=<f> fast_lpips=<f>` unless `--fast-estimate`, `nvidia_s_per_image=<f> nvidia_speedup=<f>` with
`--official-code`, `official_psnr256=<f> official_lpips=<f>` when the official mode ran in full, and
`peak_rss_mb=<int>` (plus `peak_cuda_mb=<int>` on GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from stylefuse.bench.generator import add_generator_flags, random_generator
from stylefuse.cli import CONF_DIR, compose_config
from stylefuse.errors import ConfigError
from stylefuse.projection import Projector, render
from stylefuse.projection.fast import describe_schedule, downsample
from stylefuse.projection.job import build_projector
from stylefuse.projection.targets import image_metrics
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.memory import peak_memory_mb


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="bench project", description=__doc__.splitlines()[0])
    add_generator_flags(parser)
    parser.set_defaults(res=1024, channel_base=32768)  # FFHQ-1024's generator
    parser.add_argument("--batch", type=int, default=2, help="images projected together (2 = a fusion's inputs)")
    parser.add_argument("--fast", default="w_fast", help="the fast preset, a conf/projector/ name")
    parser.add_argument("--official-steps", type=int, default=3, help="official steps timed (all of them = in full)")
    parser.add_argument("--rounds", type=int, default=1, help="official and fast runs, alternating; medians")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads, 0 = torch's default")
    parser.add_argument("--official-code", default=None, metavar="PATH",
                        help="an NVlabs/stylegan2-ada-pytorch checkout: time its projector.py too (CPU)")
    parser.add_argument("--fast-estimate", action="store_true",
                        help="time the fast preset by its estimate (one step per resolution), not in full")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the fast preset")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if args.official_code and device.type != "cpu":
        raise ConfigError("--official-code times NVIDIA's projector on the CPU: add --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = random_generator(args, device)
    with torch.no_grad():
        target = render(G, G.mapping(torch.randn([args.batch, G.z_dim], device=device), None))
    official_cfg = compose_config("project", ["projector=w", "projector.lpips_model.pnet_rand=true"])
    fast_cfg = compose_config("project", [f"projector={args.fast}", "projector.lpips_model.pnet_rand=true",
                                          *args.overrides])
    official = build_projector(G, official_cfg.projector, device)
    fast = build_projector(G, fast_cfg.projector, device)
    official_steps = official.num_steps
    timed_steps = min(args.official_steps, official_steps)
    print(f"bench project: res {args.res}, channel_base {args.channel_base}, channel_max {args.channel_max}, z/w "
          f"{G.z_dim}, map {args.map}, num_ws {G.num_ws}, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"on {device}")
    print(f"official: {official.space.upper()}, {official_steps} steps at {args.res}, {timed_steps} timed")
    schedule = describe_schedule(fast.step_resolutions())
    print(f"fast ({args.fast}): {fast.space.upper()}, {fast.num_steps} steps ({schedule}), start {fast.start}, "
          f"{fast.precision}")

    # Warm-up (allocator, kernel selection): one official step, and the fast preset's estimate, which runs a
    # forward and backward pass at each of its resolutions.
    official.num_steps = 1
    official.project(target, progress=False)
    official.num_steps = timed_steps
    estimate = fast.estimate_seconds(args.batch)
    runs = {**({"nvidia": []} if args.official_code else {}), "official": [], "fast": []}
    quality = {}
    for _ in range(args.rounds):
        if args.official_code:
            seconds, cpu_seconds = _official_code_per_step(args.official_code, G, target, timed_steps)
            runs["nvidia"].append((seconds * official_steps, cpu_seconds * official_steps))
        if args.fast_estimate:
            runs["fast"].append((fast.estimate_seconds(args.batch) / args.batch,
                                 fast.estimate_seconds(args.batch, clock=time.process_time) / args.batch))
        for name, projector in (("official", official), ("fast", fast)):
            if name == "fast" and args.fast_estimate:
                continue
            seconds, cpu_seconds, ws = _timed(projector, target, device)
            scale = official_steps / timed_steps if name == "official" else 1
            runs[name].append((seconds * scale / args.batch, cpu_seconds * scale / args.batch))
            if name == "fast" or timed_steps == official_steps:
                quality[name] = _quality(G, projector, target, ws)

    result = {}
    for name in runs:
        seconds = statistics.median(s for s, _ in runs[name])
        cpu_seconds = statistics.median(c for _, c in runs[name])
        result[f"{name}_s_per_image"] = seconds
        result[f"{name}_cpu_s_per_image"] = cpu_seconds
        how = ("measured in full" if name == "fast" or timed_steps == official_steps and name == "official"
               else f"{timed_steps} steps timed, times {official_steps}")
        if name == "fast" and args.fast_estimate:
            how = "estimated: one step per resolution, times its steps, and the start search"
        label = {"nvidia": "official code (NVIDIA projector.py, one image at a time)",
                 "official": "official mode (ours, bit for bit, batched)", "fast": f"fast ({args.fast})"}[name]
        line = f"{label}: {seconds:.1f} s/image ({seconds / 60:.1f} min), {cpu_seconds:.0f} CPU-s/image, {how}"
        if name in quality:
            q = quality[name]
            result.update({f"{name}_{k}": v for k, v in q.items()})
            line += f"; PSNR {q['psnr256']:.2f} dB at 256 ({q['psnr']:.2f} dB at {args.res}), LPIPS {q['lpips']:.4f}"
        print(line)
    result["speedup"] = result["official_s_per_image"] / result["fast_s_per_image"]
    result["cpu_speedup"] = result["official_cpu_s_per_image"] / result["fast_cpu_s_per_image"]
    speedups = f"speed-up {result['speedup']:.1f}x over the official mode"
    if "nvidia" in runs:
        result["nvidia_speedup"] = result["nvidia_s_per_image"] / result["fast_s_per_image"]
        speedups += f", {result['nvidia_speedup']:.1f}x over the official code"
    print(f"fast estimate before the run: {estimate / args.batch:.1f} s/image; {speedups}")
    line = (f"official_s_per_image={result['official_s_per_image']:.1f} fast_s_per_image="
            f"{result['fast_s_per_image']:.1f} speedup={result['speedup']:.2f} "
            f"cpu_speedup={result['cpu_speedup']:.2f}")
    if "fast" in quality:
        line += f" fast_psnr256={result['fast_psnr256']:.2f} fast_lpips={result['fast_lpips']:.4f}"
    if "nvidia" in runs:
        line += f" nvidia_s_per_image={result['nvidia_s_per_image']:.1f} nvidia_speedup={result['nvidia_speedup']:.2f}"
    if "official" in quality:
        line += f" official_psnr256={result['official_psnr256']:.2f} official_lpips={result['official_lpips']:.4f}"
    memory = peak_memory_mb(device)
    result.update(memory)
    print(line + "".join(f" {key}={value}" for key, value in memory.items()))
    return result


def _official_code_per_step(checkout: str, G: torch.nn.Module, target: torch.Tensor, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds per step and image of NVIDIA's projector.py on the same G and targets, in its own
    process (stylefuse/bench/official_project.py; this one never imports the official code)."""
    if not (Path(checkout) / "projector.py").is_file():
        raise ConfigError(f"--official-code {checkout}: no projector.py there; give an NVlabs/stylegan2-ada-pytorch "
                          f"checkout")
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.pt"
        torch.save({"kwargs": G.init_kwargs, "state_dict": {k: v.cpu() for k, v in G.state_dict().items()},
                    "targets": target.cpu(), "steps": steps}, job)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(checkout).resolve()), str(CONF_DIR.parent)]),
                   OMP_NUM_THREADS=str(torch.get_num_threads()))  # the same threads as this side
        done = subprocess.run([sys.executable, "-m", "stylefuse.bench.official_project", str(job)], env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the official projector failed:\n{done.stderr[-2000:]}")
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    return timing["s_per_step"], timing["cpu_s_per_step"]


def _timed(projector: Projector, target: torch.Tensor, device: torch.device) -> tuple[float, float, torch.Tensor]:
    """Wall and CPU seconds (all threads of this process) of one projection, and its ws."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    ws = projector.project(target, progress=False).ws
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, ws


@torch.no_grad()
def _quality(G: torch.nn.Module, projector: Projector, target: torch.Tensor, ws: torch.Tensor) -> dict[str, float]:
    """Mean PSNR (dB) at 256 and at full resolution and LPIPS of the uint8 projections against the targets."""
    proj = render(G, ws)
    full = image_metrics(projector.distance, target, proj)
    small = image_metrics(projector.distance, downsample(target.float(), 256), downsample(proj.float(), 256))
    return {"psnr256": statistics.mean(m["psnr"] for m in small), "psnr": statistics.mean(m["psnr"] for m in full),
            "lpips": statistics.mean(m["lpips"] for m in full)}
