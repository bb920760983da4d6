"""The StyleGAN2 discriminator: blocks from the image resolution down to 8x8, then the 4x4 epilogue."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from stylefuse.nn.layers import Conv2dLayer, FullyConnectedLayer
from stylefuse.nn.mapping import MappingNetwork
from stylefuse.ops import downsample2d, setup_filter
from stylefuse.utils.shapes import assert_shape, is_power_of_two


class DiscriminatorBlock(torch.nn.Module):
    """One resolution: [FromRGB], conv0, down-sampling conv1, [down-sampling 1x1 skip], per architecture."""

    def __init__(
        self,
        in_channels: int,                 # Number of input channels, 0 = first block.
        tmp_channels: int,                # Number of intermediate channels.
        out_channels: int,                # Number of output channels.
        resolution: int,                  # Resolution of this block.
        img_channels: int,                # Number of input color channels.
        first_layer_idx: int,             # Index of the first layer (for Freeze-D).
        architecture: str = "resnet",     # Architecture: 'orig', 'skip', 'resnet'.
        activation: str = "lrelu",        # Activation function: 'relu', 'lrelu', etc.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # Low-pass filter applied when resampling activations.
        conv_clamp: float | None = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        use_fp16: bool = False,           # Use FP16 for this block?
        fp16_channels_last: bool = False,  # Use channels-last memory format with FP16?
        freeze_layers: int = 0,           # Freeze-D: number of layers to freeze.
    ):
        assert in_channels in (0, tmp_channels)
        assert architecture in ("orig", "skip", "resnet"), f"unknown architecture {architecture!r}"
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fp32_channels_last = False   # Run-time options, see set_block_options.
        self.fp16_dtype = "float16"
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))

        # Layers are numbered from the highest resolution on; those below `freeze_layers` are frozen.
        self.num_layers = 0

        def trainable() -> bool:
            idx = first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 channels_last=self.channels_last)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = getattr(torch, self.fp16_dtype) if self.use_fp16 and not force_fp32 else torch.float32
        channels_last = self.fp32_channels_last if dtype == torch.float32 else self.channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format

        if x is not None:
            assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(torch.nn.Module):
    """Appends the standard deviation of features across a group of samples, so D can see sample diversity."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C + num_channels, H, W]
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        assert N % G == 0, f"minibatch-std group size {G} must divide the batch size {N}"
        F = self.num_channels
        c = C // F

        # Groups are strided: sample n sits in slot n % (N // G) of its group.
        y = x.reshape(G, -1, F, c, H, W)       # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)                  # Deviation from the group mean.
        y = y.square().mean(dim=0)             # [n, F, c, H, W] variance over the group.
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])              # [n, F] average over channels and pixels.
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: [FromRGB], minibatch std, conv, dense, output (projected onto the label embedding if any)."""

    def __init__(
        self,
        in_channels: int,                 # Number of input channels.
        cmap_dim: int,                    # Dimensionality of mapped conditioning label, 0 = no label.
        resolution: int,                  # Resolution of this block.
        img_channels: int,                # Number of input color channels.
        architecture: str = "resnet",     # Architecture: 'orig', 'skip', 'resnet'.
        mbstd_group_size: int | None = 4,  # Minibatch-std group size, None = entire minibatch.
        mbstd_num_channels: int = 1,      # Number of features for the minibatch standard deviation layer, 0 = disable.
        activation: str = "lrelu",        # Activation function: 'relu', 'lrelu', etc.
        conv_clamp: float | None = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)

        # Projection discriminator: the logit is the projection of the features onto the label embedding.
        if self.cmap_dim > 0:
            assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, cmap_dim={self.cmap_dim}"


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator, constructor arguments and state_dict names as in the official implementation."""

    def __init__(
        self,
        c_dim: int,                       # Conditioning label (C) dimensionality.
        img_resolution: int,              # Input resolution.
        img_channels: int,                # Number of input color channels.
        architecture: str = "resnet",     # Architecture: 'orig', 'skip', 'resnet'.
        channel_base: int = 32768,        # Overall multiplier for the number of channels.
        channel_max: int = 512,           # Maximum number of channels in any layer.
        num_fp16_res: int = 0,            # Use FP16 for the N highest resolutions.
        conv_clamp: float | None = None,  # Clamp the output of convolution layers to +-X, None = disable clamping.
        cmap_dim: int | None = None,      # Dimensionality of mapped conditioning label, None = default.
        block_kwargs: dict | None = None,     # Arguments for DiscriminatorBlock.
        mapping_kwargs: dict | None = None,   # Arguments for MappingNetwork.
        epilogue_kwargs: dict | None = None,  # Arguments for DiscriminatorEpilogue.
    ):
        assert img_resolution >= 4 and is_power_of_two(img_resolution), \
            f"img_resolution must be a power of two >= 4, got {img_resolution}"
        super().__init__()
        block_kwargs = dict(block_kwargs or {})
        mapping_kwargs = dict(mapping_kwargs or {})
        epilogue_kwargs = dict(epilogue_kwargs or {})
        self.init_kwargs = copy.deepcopy(dict(
            c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, architecture=architecture,
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
            cmap_dim=cmap_dim, block_kwargs=block_kwargs, mapping_kwargs=mapping_kwargs,
            epilogue_kwargs=epilogue_kwargs))
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], resolution=res,
                                       first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution),
                                       **block_kwargs, **common_kwargs)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs,
                                        **common_kwargs)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, **block_kwargs) -> torch.Tensor:  # -> [N, 1]
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
