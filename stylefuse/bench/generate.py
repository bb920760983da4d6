"""`bench generate`: images per second of a random-weight generator, seed to uint8 image on the host.

    python -m stylefuse.bench generate --res 256 --batch 16 --device cuda

Times what the generation job does per image (mapping, synthesis with const noise, the official uint8 conversion and
the copy to host memory), in batches, after one warm-up batch. Last line: `img_per_sec=<float> peak_rss_mb=<int>`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch

from stylefuse.bench.generator import add_generator_flags, random_generator
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import generated_to_uint8
from stylefuse.utils.memory import peak_memory_mb


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="bench generate", description=__doc__.splitlines()[0])
    add_generator_flags(parser)
    parser.add_argument("--batch", type=int, default=16, help="images per forward pass")
    parser.add_argument("--n", type=int, default=64, help="images to time (rounded up to whole batches)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    G = random_generator(args, device)
    num_batches = -(-args.n // args.batch)
    print(f"bench generate: res {args.res}, batch {args.batch}, channel_base {args.channel_base}, channel_max "
          f"{args.channel_max}, map {args.map}, {num_batches * args.batch} images on {device}")

    def run_batch() -> None:
        z = torch.randn([args.batch, G.z_dim], device=device)
        generated_to_uint8(G(z, None, noise_mode="const")).cpu()  # .cpu() also waits for the GPU

    with torch.no_grad():
        run_batch()  # warm-up: allocator, kernel selection
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(num_batches):
            run_batch()
        seconds = time.perf_counter() - start

    result = {"img_per_sec": num_batches * args.batch / seconds, **peak_memory_mb(device)}
    if "peak_cuda_mb" in result:
        print(f"peak_cuda_mb={result['peak_cuda_mb']}")
    print(f"{seconds:.3f} s for {num_batches} batches")
    print(f"img_per_sec={result['img_per_sec']:.2f} peak_rss_mb={result['peak_rss_mb']}")
    return result
