"""Peak memory of this process: what the benchmarks print and the training statistics log."""

from __future__ import annotations

import resource

import torch

MB, GB = 2**20, 2**30


def peak_rss() -> int:
    """Peak resident memory of this process since it started, in bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_cuda(device: torch.device, reset: bool = False) -> int:
    """Peak memory held by tensors on the CUDA `device` since the last reset, in bytes; `reset` starts a new
    measurement."""
    peak = torch.cuda.max_memory_allocated(device)
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
    return peak


def peak_memory_mb(device: torch.device) -> dict[str, int]:
    """The benchmarks' memory fields: `peak_rss_mb` and, on a CUDA device, `peak_cuda_mb` (since the last
    `torch.cuda.reset_peak_memory_stats`)."""
    memory = {"peak_rss_mb": peak_rss() // MB}
    if device.type == "cuda":
        memory["peak_cuda_mb"] = peak_cuda(device) // MB
    return memory
