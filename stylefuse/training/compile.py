"""torch.compile of the main phases: G's synthesis and D as Gmain and Dmain call them, forward and backward.

Gmain and Dmain are most of every iteration. The regularization phases (Greg, Dreg) differentiate twice, which
compiled graphs do not support (pytorch#91469), so they call the same modules eagerly: one set of parameters, two
ways of running it. The compiled callables live here, outside the module tree (no `_orig_mod.` in state_dict keys).

Same function as eager: the per-layer synthesis noise is drawn by aten's own randn (inductor's `fallback_random`),
so the global RNG gives the same numbers in the same order and the augment pipe, eager between G and D, draws after
them exactly as in eager. Shapes are static (`dynamic=False`): each main phase sees one batch size and one
requires-grad pattern per network, so a run compiles four graphs once (synthesis with and without gradients, D with
gradients for its input or for its weights) and never recompiles; the tests count the graphs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from stylefuse.errors import ConfigError
from stylefuse.nn import Discriminator, Generator

log = logging.getLogger(__name__)

# Inductor draws random numbers with aten's kernels and the global generator, as eager code does.
COMPILE_OPTIONS = {"fallback_random": True}
SETTINGS = ("auto", True, False)


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run on `device` here (None when it can): inductor needs a C++ compiler for CPU code
    and Triton for CUDA code."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (pip install triton)"
    if device.type == "cpu":
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except RuntimeError:
            return "no C++ compiler was found (install g++)"
        return None
    return f"this project compiles for CPU and CUDA only, not {device.type}"


def check_compile_setting(setting: str | bool) -> None:
    if setting not in SETTINGS:
        raise ConfigError(f"model.compile must be auto, true or false, got {setting!r}")


def resolve_compile(setting: str | bool, device: torch.device) -> bool:
    """`model.compile`: true, false, or auto = on CUDA only.

    Auto is off on the CPU: there compilation takes minutes (C++ builds on few cores) for a fraction less time per
    main-phase iteration, more than the short CPU runs this project makes save (docs/performance.md). On CUDA the
    compiled graphs become fused Triton kernels, the plain-PyTorch counterpart of NVIDIA's custom kernels, for
    minutes of compilation against hours of training.
    """
    check_compile_setting(setting)
    reason = compile_unavailable(device)
    if setting == "auto":
        if device.type == "cuda" and reason is not None:
            log.info("model.compile=auto: training eagerly, %s", reason)
        return device.type == "cuda" and reason is None
    if setting and reason is not None:
        raise ConfigError(f"model.compile=true, but {reason}; install it or set model.compile=false")
    return bool(setting)


class MainPhaseForwards:
    """G's synthesis and D as the main phases call them: the modules themselves, or their compiled forwards."""

    def __init__(self, G: Generator, D: Discriminator, compiled: bool):
        self.compiled = compiled
        self.synthesis: Callable[..., torch.Tensor] = G.synthesis
        self.discriminator: Callable[..., torch.Tensor] = D
        if compiled:
            self.synthesis = torch.compile(G.synthesis.forward, dynamic=False, options=COMPILE_OPTIONS)
            self.discriminator = torch.compile(D.forward, dynamic=False, options=COMPILE_OPTIONS)
