"""Layers shared by the generator and the discriminator: equalized-lr dense and conv layers, modulated convolution.

Equalized learning rate: parameters are stored with unit variance and scaled at run time by 1/sqrt(fan_in), so
Adam's per-parameter step sizes are comparable across layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from stylefuse.ops import bias_act, conv2d_resample, setup_filter
from stylefuse.ops.bias_act import activation_funcs
from stylefuse.utils.shapes import assert_shape


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scales `x` to unit mean square along `dim` (the pixel norm of the mapping network input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def set_block_options(net: torch.nn.Module, fp32_channels_last: bool | None = None,
                      fp16_dtype: str | None = None, factored_demod: bool | None = None) -> None:
    """Run-time options of the synthesis and discriminator blocks of `net` (None keeps an option as it is).

    fp32_channels_last: float32 blocks run channels-last too (officially only the float16 blocks can, with
        `fp16_channels_last`). Same numbers up to rounding; oneDNN's CPU convolutions and depthwise FIR filters are
        faster channels-last.
    fp16_dtype: what the `use_fp16` blocks compute in: 'float16' (official) or 'bfloat16' (float32's exponent
        range, so nothing to overflow; fast on Ampere+ GPUs). A name, not a torch.dtype: the blocks stay picklable
        as plain network snapshots.
    factored_demod: the synthesis layers' demodulation coefficients from one matmul of the squared styles with the
        weight's squared norms per (output, input) channel, instead of from the [N, O, I, kh, kw] modulated weight
        (official). The same sum, in another order: equal up to rounding, and in the shared-weight (non-fused)
        modulated convolution the [N, O, I, kh, kw] tensor is never built, forward or backward.
    """
    assert fp16_dtype in (None, "float16", "bfloat16"), f"unsupported fp16_dtype {fp16_dtype!r}"
    for module in net.modules():
        if hasattr(module, "fp32_channels_last") and fp32_channels_last is not None:
            module.fp32_channels_last = fp32_channels_last
        if hasattr(module, "fp16_dtype") and fp16_dtype is not None:
            module.fp16_dtype = fp16_dtype
        if hasattr(module, "factored_demod") and factored_demod is not None:
            module.factored_demod = factored_demod


def modulated_conv2d(
    x: torch.Tensor,                    # [N, I, H, W] input activations.
    weight: torch.Tensor,               # [O, I, kh, kw] raw weight (no equalized-lr gain).
    styles: torch.Tensor,               # [N, I] per-sample modulation.
    noise: torch.Tensor | None = None,  # Added after demodulation, broadcast to [N, O, H', W'].
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,           # False = true convolution (up-sampling layers), True = correlation.
    fused_modconv: bool = True,         # Grouped conv with per-sample weights, or scale x around a shared one.
    factored_demod: bool = False,       # Demodulation coefficients by a matmul (see set_block_options).
) -> torch.Tensor:
    """StyleGAN2's modulated convolution: per-sample weights `weight * styles`, optionally demodulated to unit norm."""
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    assert_shape(x, [N, I, None, None])
    assert_shape(styles, [N, I])

    # In float16 the products below can overflow; scale both to max-abs 1 first. Demodulation undoes the scaling.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(I * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if fused_modconv or (demodulate and not factored_demod):
        w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)  # [N, O, I, kh, kw]
    if demodulate and factored_demod:
        # sum over i, k of (weight[o, i, k] * s[i])^2 = sum over i of s[i]^2 * |weight[o, i]|^2
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    elif demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        # One convolution shared by the batch: modulate the input, demodulate the output.
        x = x * styles.to(x.dtype).reshape(N, I, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, O, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(N, O, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # One grouped convolution over the batch, a group per sample.
    if demodulate:
        w = w * dcoefs.reshape(N, O, 1, 1, 1)
    x = x.reshape(1, N * I, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(N * O, I, kh, kw).to(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, groups=N, flip_weight=flip_weight)
    x = x.reshape(N, O, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalized learning rate and a learning-rate multiplier."""

    def __init__(
        self,
        in_features: int,              # Number of input features.
        out_features: int,             # Number of output features.
        bias: bool = True,             # Apply additive bias before the activation function?
        activation: str = "linear",    # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier: float = 1,      # Learning rate multiplier.
        bias_init: float = 0,          # Initial value for the additive bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalized learning rate, optional FIR up/down-sampling, activation and clamping."""

    def __init__(
        self,
        in_channels: int,              # Number of input channels.
        out_channels: int,             # Number of output channels.
        kernel_size: int,              # Width and height of the convolution kernel.
        bias: bool = True,             # Apply additive bias before the activation function?
        activation: str = "linear",    # Activation function: 'relu', 'lrelu', etc.
        up: int = 1,                   # Integer upsampling factor.
        down: int = 1,                 # Integer downsampling factor.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # Low-pass filter applied when resampling activations.
        conv_clamp: float | None = None,  # Clamp the output to +-X, None = disable clamping.
        channels_last: bool = False,   # Expect the input to have memory_format=channels_last?
        trainable: bool = True,        # Update the weights of this layer during training? (Freeze-D)
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_value) if bias_value is not None else None
        else:
            # Frozen layers keep their weights as buffers of the same names: saved and loaded, never optimized.
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_value)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")
