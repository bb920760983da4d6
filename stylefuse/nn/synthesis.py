"""The synthesis network ws -> image and the Generator (mapping + synthesis)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from stylefuse.nn.layers import Conv2dLayer, FullyConnectedLayer, modulated_conv2d
from stylefuse.nn.mapping import MappingNetwork
from stylefuse.ops import bias_act, setup_filter, upsample2d
from stylefuse.ops.bias_act import activation_funcs
from stylefuse.utils.shapes import assert_shape, is_power_of_two

NOISE_MODES = ("random", "const", "none")


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution (optionally up-sampling 2x), per-pixel noise, bias and activation."""

    def __init__(
        self,
        in_channels: int,                 # Number of input channels.
        out_channels: int,                # Number of output channels.
        w_dim: int,                       # Intermediate latent (W) dimensionality.
        resolution: int,                  # Resolution of this layer (output).
        kernel_size: int = 3,             # Convolution kernel size.
        up: int = 1,                      # Integer upsampling factor.
        use_noise: bool = True,           # Enable noise input?
        activation: str = "lrelu",        # Activation function: 'relu', 'lrelu', etc.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # Low-pass filter applied when resampling activations.
        conv_clamp: float | None = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        channels_last: bool = False,      # Use channels_last format for the weights?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.factored_demod = False  # Run-time option, see set_block_options.

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1) -> torch.Tensor:
        assert noise_mode in NOISE_MODES, f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}"
        in_resolution = self.resolution // self.up
        assert_shape(x, [None, self.in_channels, in_resolution, in_resolution])
        styles = self.affine(w)  # [N, in_channels]

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv, factored_demod=self.factored_demod)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        # No demodulation here, so the equalized-lr gain goes on the styles.
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: [up-sampling conv0], conv1, [ToRGB], per architecture."""

    def __init__(
        self,
        in_channels: int,                 # Number of input channels, 0 = first block (learned constant input).
        out_channels: int,                # Number of output channels.
        w_dim: int,                       # Intermediate latent (W) dimensionality.
        resolution: int,                  # Resolution of this block.
        img_channels: int,                # Number of output color channels.
        is_last: bool,                    # Is this the last block?
        architecture: str = "skip",       # Architecture: 'orig', 'skip', 'resnet'.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # Low-pass filter applied when resampling activations.
        conv_clamp: float | None = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        use_fp16: bool = False,           # Use FP16 for this block?
        fp16_channels_last: bool = False,  # Use channels-last memory format with FP16?
        **layer_kwargs,                   # Arguments for SynthesisLayer.
    ):
        assert architecture in ("orig", "skip", "resnet"), f"unknown architecture {architecture!r}"
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fp32_channels_last = False   # Run-time options, see set_block_options.
        self.fp16_dtype = "float16"
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(
        self,
        x: torch.Tensor | None,           # [N, in_channels, res/2, res/2], None for the first block.
        img: torch.Tensor | None,         # [N, img_channels, res/2, res/2] running skip image, or None.
        ws: torch.Tensor,                 # [N, num_conv + num_torgb, w_dim]
        force_fp32: bool = False,
        fused_modconv: bool | None = None,
        **layer_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        dtype = getattr(torch, self.fp16_dtype) if self.use_fp16 and not force_fp32 else torch.float32
        channels_last = self.fp32_channels_last if dtype == torch.float32 else self.channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if fused_modconv is None:
            # The grouped conv pays off at inference; training uses the shared conv (cheaper weight gradients).
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.contiguous(memory_format=memory_format)
        else:
            assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(torch.nn.Module):
    def __init__(
        self,
        w_dim: int,                       # Intermediate latent (W) dimensionality.
        img_resolution: int,              # Output image resolution.
        img_channels: int,                # Number of color channels.
        channel_base: int = 32768,        # Overall multiplier for the number of channels.
        channel_max: int = 512,           # Maximum number of channels in any layer.
        num_fp16_res: int = 0,            # Use FP16 for the N highest resolutions.
        **block_kwargs,                   # Arguments for SynthesisBlock.
    ):
        assert img_resolution >= 4 and is_power_of_two(img_resolution), \
            f"img_resolution must be a power of two >= 4, got {img_resolution}"
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs) -> torch.Tensor:  # [N, num_ws, w_dim] -> [N, C, H, W]
        return self.running_image(ws, self.img_resolution, **block_kwargs)

    def running_image(self, ws: torch.Tensor, resolution: int, **block_kwargs) -> torch.Tensor:
        """The image [N, C, resolution, resolution] after the blocks up to `resolution`, the later ones not run.

        In a 'skip' network every block up-samples the running image and adds its ToRGB output, so the image at a
        lower resolution is the coarse part of the final one, at a fraction of the cost (the projector's fast mode
        optimizes through it). At img_resolution this is the network's output, for every architecture.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        assert resolution in self.block_resolutions, f"no block at resolution {resolution}: {self.block_resolutions}"
        assert resolution == self.img_resolution or self.b4.architecture == "skip", \
            "only a 'skip' synthesis network has an image before its last block"
        ws = ws.to(torch.float32)
        # Each block's ToRGB shares its w with the next block's conv0.
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            if res > resolution:
                break
            x, img = getattr(self, f"b{res}")(x, img, cur_ws, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


class Generator(torch.nn.Module):
    """StyleGAN2 generator, constructor arguments and state_dict names as in the official implementation."""

    def __init__(
        self,
        z_dim: int,                       # Input latent (Z) dimensionality.
        c_dim: int,                       # Conditioning label (C) dimensionality.
        w_dim: int,                       # Intermediate latent (W) dimensionality.
        img_resolution: int,              # Output resolution.
        img_channels: int,                # Number of output color channels.
        mapping_kwargs: dict | None = None,    # Arguments for MappingNetwork.
        synthesis_kwargs: dict | None = None,  # Arguments for SynthesisNetwork.
    ):
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = copy.deepcopy(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, mapping_kwargs=mapping_kwargs,
                                              synthesis_kwargs=synthesis_kwargs))
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)
