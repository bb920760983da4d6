"""`bench gpu-check`: the one command to run on a CUDA machine (at most 8 minutes, `--budget`).

    python -m stylefuse.bench gpu-check [--official /path/to/stylegan2-ada-pytorch]

1. Smoke test of every training phase (Gmain, Greg, Dmain, Dreg) on CUDA with float16 blocks and conv_clamp 256, at
   small shapes, eager and compiled (`model.compile=true`): every loss, weight and gradient finite, and the compiled
   phase losses within 1% of eager (float16 rounding differs between the two).
2. `bench train` at the `paper256` shapes (256x256, batch 64, channel_base 16384, channel_max 512, 8 mapping layers):
   float16 in the 4 highest resolutions eager and compiled, float32 eager; each prints sec/kimg, peak CUDA memory and
   the achieved TFLOP/s, in its own process.
3. The official training step with its CUDA kernels (`official_step_bench.py --device cuda`, float32 as the tool
   builds it: compare it with the float32 line), if the official code and the tool are found and its extensions
   build; otherwise the reason it was skipped.

Ends with a summary table to paste into docs/performance.md. `--device cpu` with small `--res`/`--batch` runs the
same steps on the CPU (a quick check of the script itself).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from stylefuse.bench.train import build_bench_module
from stylefuse.errors import StylefuseError
from stylefuse.training.builders import configure_backends

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_BENCH = REPO.parent / "shared" / "tools" / "official_step_bench.py"


def smoke(device: torch.device, compiled: bool, res: int, batch: int) -> dict[str, float]:
    """One iteration with all four phases at small shapes (float16 in 2 resolutions, conv_clamp 256); the mean of
    every statistic. Raises if anything came out NaN or Inf."""
    module, _ = build_bench_module(res, batch, channel_base=max(res * 32, 1024), channel_max=128, map_layers=2,
                                     fp16_res=2, overrides=[f"model.compile={str(compiled).lower()}"])
    module = module.to(device)
    module.configure_layout(device)
    module.configure_compile(device)
    opt_G, opt_D = module.configure_optimizers()
    real_img = torch.rand([batch, 3, res, res], device=device) * 2 - 1
    real_c = torch.zeros([batch, 0], device=device)
    torch.manual_seed(1)  # the per-layer noise: the same draws eager and compiled
    inputs = module.draw_phase_inputs(module.due_phases(0), rank=0, world_size=1)
    assert sorted(inputs) == ["Dmain", "Dreg", "Gmain", "Greg"], sorted(inputs)
    module.run_iteration(real_img, real_c, inputs, {"G": opt_G, "D": opt_D})
    stats = module.running_stats.collect(reduce_sum=lambda t: t)
    bad = [name for name, value in stats.items() if not math.isfinite(value)]
    for net in ("G", "D"):
        for name, param in getattr(module, net).named_parameters():
            if not torch.isfinite(param).all() or (param.grad is not None and not torch.isfinite(param.grad).all()):
                bad.append(f"{net}.{name}")
    if bad:
        raise RuntimeError(f"non-finite values after one iteration ({'compiled' if compiled else 'eager'}): "
                           f"{', '.join(bad[:8])}")
    return stats


def bench_line(args: argparse.Namespace, fp16_res: int, compiled: bool, timeout: float) -> dict[str, str]:
    """`bench train` at the large shapes in its own process; its figures as strings (or `error`)."""
    command = [sys.executable, "-m", "stylefuse.bench", "train", "--device", args.device, "--res", str(args.res),
               "--batch", str(args.batch), "--channel-base", str(args.channel_base), "--channel-max",
               str(args.channel_max), "--map", str(args.map), "--iters", str(args.iters), "--warmup", "2",
               "--fp16-res", str(fp16_res), f"model.compile={str(compiled).lower()}"]
    return run_and_parse(command, timeout, REPO)


def official_line(args: argparse.Namespace, timeout: float) -> dict[str, str]:
    official = Path(args.official)
    if not (official / "training" / "networks.py").is_file():
        return {"skipped": f"no official code at {official} (--official PATH)"}
    if not OFFICIAL_BENCH.is_file():
        return {"skipped": f"no {OFFICIAL_BENCH}"}
    command = [sys.executable, str(OFFICIAL_BENCH), "--device", args.device, "--res", str(args.res), "--batch",
               str(args.batch), "--channel-base", str(args.channel_base), "--channel-max", str(args.channel_max),
               "--map", str(args.map), "--iters", str(args.iters)]
    return run_and_parse(command, timeout, REPO, env={**os.environ, "OFFICIAL": str(official)})


def run_and_parse(command: list[str], timeout: float, cwd: Path, env: dict | None = None) -> dict[str, str]:
    """Runs `command`, echoes its output, and returns the `key=value` words of its last line."""
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    output = (done.stdout + done.stderr).strip().splitlines()
    print("\n".join("    " + line for line in output[-6:]), flush=True)
    if done.returncode != 0 or not output:
        return {"error": f"exit {done.returncode}: {output[-1] if output else 'no output'}"}
    words = dict(word.split("=", 1) for word in output[-1].split() if "=" in word)
    words["seconds"] = f"{time.perf_counter() - start:.0f}"
    return words


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (cpu: a quick check of the script at small shapes)")
    parser.add_argument("--smoke-res", type=int, default=32, help="resolution of the smoke test")
    parser.add_argument("--res", type=int, default=256, help="resolution of the timed runs (paper256: 256)")
    parser.add_argument("--batch", type=int, default=64, help="batch of the timed runs (paper256: 64)")
    parser.add_argument("--channel-base", type=int, default=16384, help="channel_base (paper256: 16384)")
    parser.add_argument("--channel-max", type=int, default=512, help="channel_max (paper256: 512)")
    parser.add_argument("--map", type=int, default=8, help="mapping layers (paper256: 8)")
    parser.add_argument("--iters", type=int, default=16, help="timed iterations per run")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed for each timed run (twice that "
                        "for the compiled one, which compiles first)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check: a run that would "
                        "start with less than a minute left is skipped")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled smoke test and run")
    parser.add_argument("--official", default=os.environ.get("OFFICIAL", "/tmp/official"),
                        help="the official stylegan2-ada-pytorch checkout (default: $OFFICIAL or /tmp/official)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("PyTorch sees no CUDA device here (run this on a GPU machine, or --device cpu to try the script)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu-check on {name}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    configure_backends(cudnn_benchmark=True, allow_tf32=False)
    failures = 0
    deadline = time.perf_counter() + args.budget

    def time_left(limit: float) -> float:
        return min(limit, deadline - time.perf_counter())

    modes = [False] if args.no_compile else [False, True]
    smoke_stats = {}
    for compiled in modes:
        label = "compiled" if compiled else "eager"
        start = time.perf_counter()
        try:
            smoke_stats[label] = smoke(device, compiled, args.smoke_res, batch=8)
            print(f"smoke {label}: Gmain Greg Dmain Dreg finite with float16 blocks and conv_clamp 256 "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        except (RuntimeError, StylefuseError) as error:
            failures += 1
            print(f"smoke {label}: FAILED: {error}", flush=True)
    if len(smoke_stats) == 2:
        losses = [name for name in smoke_stats["eager"] if name.startswith("loss/")]
        worst = max(abs(smoke_stats["compiled"][n] - smoke_stats["eager"][n]) / max(abs(smoke_stats["eager"][n]), 1e-6)
                    for n in losses)
        failures += worst > 0.01
        print(f"smoke compiled vs eager: largest relative difference of the losses {worst:.2e} "
              f"({'ok' if worst <= 0.01 else 'FAILED, more than 1%'})", flush=True)

    # The compiled run last: it compiles first (minutes), so it gets twice the time and whatever budget is left.
    runs = [("ours, float16 x4, eager", 4, False), ("ours, float32, eager", 0, False),
            ("official CUDA kernels, float32", None, False)]
    if not args.no_compile:
        runs.append(("ours, float16 x4, compiled", 4, True))
    rows = []
    for label, fp16_res, compiled in runs:
        timeout = time_left(args.timeout * (2 if compiled else 1))
        if timeout < 60:
            rows.append((label, {"skipped": f"--budget {args.budget:.0f} s spent"}))
        elif fp16_res is None:
            rows.append((label, official_line(args, timeout)))
        else:
            rows.append((label, bench_line(args, fp16_res, compiled, timeout)))

    print(f"\n{name}, {args.res}x{args.res}, batch {args.batch}, channel_base {args.channel_base}, channel_max "
          f"{args.channel_max}, map {args.map}, {args.iters} timed iterations")
    print("| run | sec/kimg | peak CUDA MB | TFLOP/s | wall s (with start-up) |")
    print("|-----|----------|--------------|---------|------------------------|")
    for label, words in rows:
        if "error" in words or "skipped" in words:
            failures += "error" in words
            print(f"| {label} | {words.get('error') or 'skipped: ' + words['skipped']} | | | |")
            continue
        print(f"| {label} | {words.get('sec/kimg', '?')} | {words.get('peak_cuda_mb', '-')} | "
              f"{words.get('tflops', '-')} | {words['seconds']} |")
    print("gpu-check: " + ("all checks passed" if not failures else f"{failures} check(s) FAILED"))
    return 1 if failures else 0
