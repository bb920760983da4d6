"""The ADA augmentation pipe ("Training Generative Adversarial Networks with Limited Data", Karras et al. 2020).

Every augmentation is applied to each sample independently with probability `multiplier * p`; `p` is a buffer that
the ADA heuristic (`stylefuse.augment.ada`) moves during training. Order, parameter distributions and random draws
follow NVIDIA's official `training/augment.py`, so the same RNG state gives the same augmented images:

1. pixel blitting and general geometry (xflip, rotate90, xint, scale, pre-rotation, aniso, post-rotation, xfrac),
   composed into one matrix and executed by a single warp at twice the resolution between wavelet low-passes;
2. colour (brightness, contrast, lumaflip, hue, saturation), composed into one 4x4 matrix;
3. image-space filtering with random gains for four octave bands;
4. corruptions (additive RGB noise, cutout).

Mirroring (xflip, rotate90) happens at 2x resolution between the slightly asymmetric sym6 low-passes, so a mirrored
axis also passes a 12-tap residual filter (the even taps of sym6 * sym6): like the official pipe, these are not
exact pixel copies (tests/augment/test_pipe.py spells the filter out). Everything is differentiable w.r.t. the images
to second order (R1 is computed through the pipe).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from stylefuse.augment.filters import SYM2, SYM6, octave_filter_bank
from stylefuse.augment.matrices import rotation2d, rotation3d, scaling, translation
from stylefuse.errors import ConfigError
from stylefuse.ops import downsample2d, setup_filter, upsample2d
from stylefuse.utils.shapes import assert_shape

# Expected power of natural images in the four octave bands (1/f spectrum), lowest band first.
_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


class AugmentPipe(torch.nn.Module):
    def __init__(
        self,
        xflip: float = 0,                # Probability multiplier for x-flip.
        rotate90: float = 0,             # Probability multiplier for 90 degree rotations.
        xint: float = 0,                 # Probability multiplier for integer translation.
        xint_max: float = 0.125,         # Range of integer translation, relative to image dimensions.
        scale: float = 0,                # Probability multiplier for isotropic scaling.
        rotate: float = 0,               # Probability multiplier for arbitrary rotation.
        aniso: float = 0,                # Probability multiplier for anisotropic scaling.
        xfrac: float = 0,                # Probability multiplier for fractional translation.
        scale_std: float = 0.2,          # Log2 standard deviation of isotropic scaling.
        rotate_max: float = 1,           # Range of arbitrary rotation, 1 = full circle.
        aniso_std: float = 0.2,          # Log2 standard deviation of anisotropic scaling.
        xfrac_std: float = 0.125,        # Standard deviation of fractional translation, relative to image dimensions.
        brightness: float = 0,           # Probability multiplier for brightness.
        contrast: float = 0,             # Probability multiplier for contrast.
        lumaflip: float = 0,             # Probability multiplier for luma flip.
        hue: float = 0,                  # Probability multiplier for hue rotation.
        saturation: float = 0,           # Probability multiplier for saturation.
        brightness_std: float = 0.2,     # Standard deviation of brightness.
        contrast_std: float = 0.5,       # Log2 standard deviation of contrast.
        hue_max: float = 1,              # Range of hue rotation, 1 = full circle.
        saturation_std: float = 1,       # Log2 standard deviation of saturation.
        imgfilter: float = 0,            # Probability multiplier for image-space filtering.
        imgfilter_bands: Sequence[float] = (1, 1, 1, 1),  # Probability multipliers for the four frequency bands.
        imgfilter_std: float = 1,        # Log2 standard deviation of image-space filter amplification.
        noise: float = 0,                # Probability multiplier for additive RGB noise.
        cutout: float = 0,               # Probability multiplier for cutout.
        noise_std: float = 0.1,          # Standard deviation of additive RGB noise.
        cutout_size: float = 0.5,        # Size of the cutout square, relative to image dimensions.
    ):
        super().__init__()
        self.register_buffer("p", torch.ones([]))  # Overall probability; ADA overwrites it during training.

        # Pixel blitting.
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.xint = float(xint)
        self.xint_max = float(xint_max)
        # General geometric transformations.
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.aniso = float(aniso)
        self.xfrac = float(xfrac)
        self.scale_std = float(scale_std)
        self.rotate_max = float(rotate_max)
        self.aniso_std = float(aniso_std)
        self.xfrac_std = float(xfrac_std)
        # Colour transformations.
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.lumaflip = float(lumaflip)
        self.hue = float(hue)
        self.saturation = float(saturation)
        self.brightness_std = float(brightness_std)
        self.contrast_std = float(contrast_std)
        self.hue_max = float(hue_max)
        self.saturation_std = float(saturation_std)
        # Image-space filtering.
        self.imgfilter = float(imgfilter)
        self.imgfilter_bands = [float(b) for b in imgfilter_bands]
        self.imgfilter_std = float(imgfilter_std)
        # Image-space corruptions.
        self.noise = float(noise)
        self.cutout = float(cutout)
        self.noise_std = float(noise_std)
        self.cutout_size = float(cutout_size)
        if len(self.imgfilter_bands) != len(_BAND_POWER):
            raise ConfigError(f"imgfilter_bands needs {len(_BAND_POWER)} values (one per octave band), got "
                              f"{self.imgfilter_bands}; set e.g. imgfilter_bands=[1,1,1,1]")

        # Separable 12-tap low-pass around the geometric warp; `Hz_fbank` [4, 43] holds the octave band filters.
        self.register_buffer("Hz_geom", setup_filter(SYM6))
        self.register_buffer("Hz_fbank", torch.as_tensor(octave_filter_bank(SYM2), dtype=torch.float32))

    def extra_repr(self) -> str:
        names = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                 "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"]
        enabled = [f"{name}={getattr(self, name):g}" for name in names if getattr(self, name) > 0]
        return ", ".join(enabled) or "no augmentations"

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, H, W]
        assert_shape(images, [None, None, None, None])
        batch_size, num_channels, height, width = images.shape
        device = images.device

        # Runs whenever a geometric multiplier is set, even at p = 0 (then it is the identity up to ~1e-6).
        G_inv = self._sample_geometry(batch_size, height, width, device)
        if G_inv is not None:
            images = self._warp(images, G_inv)
        C = self._sample_color(batch_size, num_channels, device)
        if C is not None:
            images = self._apply_color(images, C)
        if self.imgfilter > 0:
            images = self._filter(images)
        if self.noise > 0:
            images = self._add_noise(images)
        if self.cutout > 0:
            images = self._cut_out(images)
        return images

    # ------------------------------------------------------------------------------------------------------------
    # Random parameters. Each augmentation draws its values first and then one uniform per sample that decides
    # whether it fires; samples where it does not fire get the identity value.

    def _gate(self, value: torch.Tensor, prob: torch.Tensor, identity: float) -> torch.Tensor:
        """`value` [N, ...] where a per-sample draw falls below `prob`, `identity` elsewhere."""
        fire = torch.rand([value.shape[0]], device=value.device) < prob
        return torch.where(fire.reshape([-1] + [1] * (value.ndim - 1)), value, torch.full_like(value, identity))

    def _sample_geometry(self, n: int, height: int, width: int, device: torch.device) -> torch.Tensor | None:
        """Inverse homogeneous transform [N, 3, 3] from output to input pixel coordinates (centred on the image).

        Each step is right-multiplied by the inverse of its transform, so the steps act on the image in order.
        """
        multipliers = [self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac]
        if max(multipliers) <= 0:
            return None
        G_inv = torch.eye(3, device=device)

        if self.xflip > 0:  # Mirror x for half of the samples that fire.
            flip = self._gate(torch.floor(torch.rand([n], device=device) * 2), self.xflip * self.p, 0)
            G_inv = G_inv @ scaling(torch.stack([1 - 2 * flip, torch.ones_like(flip)], dim=1))

        if self.rotate90 > 0:  # Rotate by k quarter turns, k uniform in 0..3.
            k = self._gate(torch.floor(torch.rand([n], device=device) * 4), self.rotate90 * self.p, 0)
            G_inv = G_inv @ rotation2d(np.pi / 2 * k)

        if self.xint > 0:  # Shift by whole pixels; one decision for both axes.
            t = (torch.rand([n, 2], device=device) * 2 - 1) * self.xint_max
            t = self._gate(t, self.xint * self.p, 0)
            G_inv = G_inv @ translation(-torch.round(t * torch.tensor([width, height], device=device)))

        if self.scale > 0:  # Log-normal isotropic scaling.
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.scale_std), self.scale * self.p, 1)
            G_inv = G_inv @ scaling(1 / torch.stack([s, s], dim=1))

        # Arbitrary rotation before and after aniso, each with p_rot, so that P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            G_inv = G_inv @ self._sample_rotation(n, p_rot, device)

        if self.aniso > 0:  # Stretch x by s and squeeze y by 1/s, s log-normal.
            s = self._gate(torch.exp2(torch.randn([n], device=device) * self.aniso_std), self.aniso * self.p, 1)
            G_inv = G_inv @ scaling(1 / torch.stack([s, 1 / s], dim=1))

        if self.rotate > 0:
            G_inv = G_inv @ self._sample_rotation(n, p_rot, device)

        if self.xfrac > 0:  # Gaussian sub-pixel shift.
            t = self._gate(torch.randn([n, 2], device=device) * self.xfrac_std, self.xfrac * self.p, 0)
            G_inv = G_inv @ translation(-t * torch.tensor([width, height], device=device))
        return G_inv

    def _sample_rotation(self, n: int, prob: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Inverse of a rotation by an angle uniform in +-pi * rotate_max."""
        theta = (torch.rand([n], device=device) * 2 - 1) * np.pi * self.rotate_max
        return rotation2d(self._gate(theta, prob, 0))

    def _sample_color(self, n: int, num_channels: int, device: torch.device) -> torch.Tensor | None:
        """Homogeneous colour transform [N, 4, 4] acting on (r, g, b, 1) in [-1, 1] units; steps left-multiply."""
        chroma = num_channels > 1  # Hue and saturation do nothing to grey images.
        multipliers = [self.brightness, self.contrast, self.lumaflip] + ([self.hue, self.saturation] if chroma else [])
        if max(multipliers) <= 0:
            return None
        eye = torch.eye(4, device=device)
        luma = torch.tensor([1, 1, 1, 0], device=device) / math.sqrt(3)  # Grey axis.
        luma_proj = torch.outer(luma, luma)                                 # Projection onto the grey axis.
        C = eye

        if self.brightness > 0:  # Add the same offset to r, g, b.
            b = self._gate(torch.randn([n], device=device) * self.brightness_std, self.brightness * self.p, 0)
            C = translation(b[:, None].expand(n, 3)) @ C
        if self.contrast > 0:  # Scale around 0 (mid grey).
            c = self._gate(torch.exp2(torch.randn([n], device=device) * self.contrast_std), self.contrast * self.p, 1)
            C = scaling(c[:, None].expand(n, 3)) @ C
        if self.lumaflip > 0:  # Householder reflection of the luma for half of the samples that fire.
            i = self._gate(torch.floor(torch.rand([n], device=device) * 2), self.lumaflip * self.p, 0)
            C = (eye - 2 * luma_proj * i[:, None, None]) @ C
        if self.hue > 0 and chroma:  # Rotate chroma around the grey axis.
            theta = (torch.rand([n], device=device) * 2 - 1) * np.pi * self.hue_max
            C = rotation3d(luma[:3], self._gate(theta, self.hue * self.p, 0)) @ C
        if self.saturation > 0 and chroma:  # Scale chroma, keep luma.
            s = torch.exp2(torch.randn([n], device=device) * self.saturation_std)
            s = self._gate(s, self.saturation * self.p, 1)
            C = (luma_proj + (eye - luma_proj) * s[:, None, None]) @ C
        return C

    # ------------------------------------------------------------------------------------------------------------
    # Execution.

    def _warp(self, images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
        """Resamples every image through its output -> input matrix at 2x resolution, with reflected borders."""
        batch_size, num_channels, height, width = images.shape
        device = images.device
        pad = self.Hz_geom.shape[0] // 4  # Output margin that keeps the 12-tap filters' support inside the canvas.

        # Reflect-pad the batch so that every output corner (plus the filter margin) lands on real pixels.
        cx, cy = (width - 1) / 2, (height - 1) / 2
        corners = torch.tensor([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], device=device)
        reach = (G_inv @ corners)[:, :2, :]                               # [N, xy, corner] in input pixels
        margin = torch.cat([(-reach).amax(dim=(0, 2)), reach.amax(dim=(0, 2))])  # [x0, y0, x1, y1]
        margin = margin + torch.tensor([pad * 2 - cx, pad * 2 - cy] * 2, device=device)
        margin = margin.clamp(min=0).minimum(torch.tensor([width - 1, height - 1] * 2, device=device))
        mx0, my0, mx1, my1 = margin.ceil().int().tolist()
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")

        # Up-sample 2x; at the doubled resolution, centred pixel coordinates become u = 2x - 1/2.
        images = upsample2d(images, self.Hz_geom, up=2)
        out_shape = [batch_size, num_channels, (height + pad * 2) * 2, (width + pad * 2) * 2]
        one = torch.ones([1, 2], device=device)
        to_upsampled = translation(-0.5 * one) @ scaling(2 * one)
        from_upsampled = scaling(0.5 * one) @ translation(0.5 * one)
        G_inv = translation(torch.tensor([[(mx0 - mx1) / 2, (my0 - my1) / 2]], device=device)) @ G_inv  # Recentre.
        G_inv = to_upsampled @ G_inv @ from_upsampled

        # affine_grid wants normalized coordinates: +-1 at the outer pixel edges (align_corners=False).
        in_normalize = scaling(torch.tensor([[2 / images.shape[3], 2 / images.shape[2]]], device=device))
        out_denormalize = scaling(torch.tensor([[out_shape[3] / 2, out_shape[2] / 2]], device=device))
        theta = in_normalize @ G_inv @ out_denormalize
        grid = F.affine_grid(theta[:, :2, :], out_shape, align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Low-pass, down-sample 2x and crop the margin, back to [N, C, H, W].
        return downsample2d(images, self.Hz_geom, down=2, padding=-pad * 2, flip_filter=True)

    @staticmethod
    def _apply_color(images: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        batch_size, num_channels, height, width = images.shape
        pixels = images.reshape(batch_size, num_channels, height * width)
        if num_channels == 3:
            pixels = C[:, :3, :3] @ pixels + C[:, :3, 3:]
        elif num_channels == 1:
            # A grey pixel g is (g, g, g); its new grey value is the mean of the transformed r, g, b.
            grey = C[:, :3, :].mean(dim=1, keepdim=True)  # [N, 1, 4]
            pixels = pixels * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
        else:
            raise ConfigError(f"colour augmentations need RGB or grayscale images, got {num_channels} channels; "
                              "choose an augment pipe without colour (e.g. augment/pipe=bg) or convert the dataset")
        return pixels.reshape(batch_size, num_channels, height, width)

    def _filter(self, images: torch.Tensor) -> torch.Tensor:
        """Amplifies each octave band by a random gain, keeping the expected power of natural images."""
        batch_size, _, height, width = images.shape
        device = images.device
        taps = self.Hz_fbank.shape[1]
        if min(height, width) <= taps // 2:
            raise ConfigError(f"image-space filtering needs images larger than {taps // 2}x{taps // 2} pixels, got "
                              f"{height}x{width}; choose an augment pipe without 'f' (e.g. augment/pipe=bgc)")
        band_power = torch.tensor(_BAND_POWER, device=device)
        gains = torch.ones([batch_size, len(_BAND_POWER)], device=device)
        for band, band_strength in enumerate(self.imgfilter_bands):
            t = torch.exp2(torch.randn([batch_size], device=device) * self.imgfilter_std)
            t = self._gate(t, self.imgfilter * self.p * band_strength, 1)
            step = torch.where(torch.arange(len(_BAND_POWER), device=device) == band, t[:, None], 1.0)  # [N, 4]
            gains = gains * (step / (band_power * step.square()).sum(dim=1, keepdim=True).sqrt())
        h = gains @ self.Hz_fbank  # [N, taps], symmetric, one filter per sample.
        return kornia.filters.filter2d_separable(images, h, h, border_type="reflect")

    def _add_noise(self, images: torch.Tensor) -> torch.Tensor:
        batch_size = images.shape[0]
        sigma = torch.randn([batch_size], device=images.device).abs() * self.noise_std
        sigma = self._gate(sigma, self.noise * self.p, 0)
        return images + torch.randn_like(images) * sigma[:, None, None, None]

    def _cut_out(self, images: torch.Tensor) -> torch.Tensor:
        """Zeroes a square of side `cutout_size` (relative) at a uniform random centre."""
        batch_size, _, height, width = images.shape
        device = images.device
        size = self._gate(torch.full([batch_size], self.cutout_size, device=device), self.cutout * self.p, 0)
        center = torch.rand([batch_size, 2], device=device)
        x = (torch.arange(width, device=device) + 0.5) / width    # Pixel centres in [0, 1].
        y = (torch.arange(height, device=device) + 0.5) / height
        outside_x = (x[None, :] - center[:, 0:1]).abs() >= size[:, None] / 2  # [N, W]
        outside_y = (y[None, :] - center[:, 1:2]).abs() >= size[:, None] / 2  # [N, H]
        keep = outside_x[:, None, None, :] | outside_y[:, None, :, None]      # [N, 1, H, W]
        return images * keep.to(images.dtype)
