"""Bias + activation + gain + clamp, the epilogue of every StyleGAN2 layer (plain PyTorch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


activation_funcs: dict[str, Activation] = {
    "linear": Activation(lambda x, _: x, 0, 1),
    "relu": Activation(lambda x, _: F.relu(x), 0, math.sqrt(2)),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, _: torch.tanh(x), 0, 1),
    "sigmoid": Activation(lambda x, _: torch.sigmoid(x), 0, 1),
    "elu": Activation(lambda x, _: F.elu(x), 0, 1),
    "selu": Activation(lambda x, _: F.selu(x), 0, 1),
    "softplus": Activation(lambda x, _: F.softplus(x), 0, 1),
    "swish": Activation(lambda x, _: torch.sigmoid(x) * x, 0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """`clamp(act(x + b) * gain, -clamp, clamp)` with `b` broadcast along `dim`.

    `gain=None` uses the activation's default gain (sqrt(2) for lrelu, keeping the signal variance); `clamp=None`
    does not clamp.
    """
    spec = activation_funcs[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]).to(x.dtype)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
