"""The official projector's side of `bench project`, run in its own process by `stylefuse.bench.project`.

    PYTHONPATH=<official checkout>:<this repo> python -m stylefuse.bench.official_project JOB.pt

JOB.pt (torch.save of plain tensors and numbers, read with weights_only=True) holds the generator's constructor
kwargs and state dict, the uint8 targets [N, C, H, W] and `steps`. NVIDIA's `projector.project` is imported from
the checkout on the path (nothing of it lives in this repo) and run on each target, one at a time as it can only
do, for 1 and for 1 + `steps` steps after one untimed run: the difference is the cost of `steps` steps without the
setup (W statistics, VGG load). NVIDIA's LPIPS network `vgg16.pt` is a download and TorchScript code; it is
replaced by our LPIPS-VGG with a random trunk, which does the same convolutions. Prints one JSON line: wall and CPU
seconds per step and image.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings

import lpips
import numpy as np
import torch


def main(job_path: str) -> None:
    import dnnlib  # noqa: F401  (from the official checkout)
    import projector as official  # NVIDIA's projector.py
    from training.networks import Generator as OfficialGenerator

    from stylefuse.projection.lpips import LpipsDistance

    job = torch.load(job_path, weights_only=True)
    G = OfficialGenerator(**job["kwargs"]).eval().requires_grad_(False)
    G.load_state_dict(job["state_dict"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        distance = LpipsDistance(lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False))

    class VGG16StandIn(torch.nn.Module):  # the interface of vgg16.pt: one LPIPS feature vector per image
        def forward(self, img, resize_images=False, return_lpips=True):
            return distance.features(img)

    official.dnnlib.util.open_url = lambda url: contextlib.nullcontext(None)
    official.torch.jit.load = lambda f: VGG16StandIn()

    def timed(target: torch.Tensor, num_steps: int) -> tuple[float, float]:
        torch.manual_seed(303)
        np.random.seed(303)
        start, cpu_start = time.perf_counter(), time.process_time()
        official.project(G, target, num_steps=num_steps, device=torch.device("cpu"))
        return time.perf_counter() - start, time.process_time() - cpu_start

    steps = int(job["steps"])
    targets = job["targets"].float()
    timed(targets[0], 1)  # warm-up: allocator and kernel selection
    wall, cpu = [], []
    for target in targets:
        setup = timed(target, 1)
        full = timed(target, 1 + steps)
        wall.append((full[0] - setup[0]) / steps)
        cpu.append((full[1] - setup[1]) / steps)
    print(json.dumps({"s_per_step": float(np.median(wall)), "cpu_s_per_step": float(np.median(cpu))}))


if __name__ == "__main__":
    main(sys.argv[1])
