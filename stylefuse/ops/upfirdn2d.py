"""Up-sampling, FIR filtering and down-sampling of images (plain PyTorch).

`upfirdn2d` is the resampling primitive of StyleGAN2: zero-insertion up-sampling, zero padding (or cropping),
a 2-D FIR filter and decimation, per channel. The filter convention matches the official implementation:
`flip_filter=False` is a true convolution, `flip_filter=True` a correlation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def setup_filter(
    f: Sequence[float] | torch.Tensor | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turns a list of taps into a filter tensor.

    A 1-D filter with fewer than 8 taps becomes the non-separable 2-D outer product (the [1,3,3,1] blur becomes
    4x4); longer 1-D filters stay separable. The result sums to `gain` (2-D) or `sqrt(gain)` per axis (1-D).
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.ger(f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def _parse_padding(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """[x0, x1, y0, y1] from an int, an [x, y] pair or the four values."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = list(padding)
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D filter is separable and square."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Up-sample by zero insertion, pad, FIR-filter and down-sample `x` [N, C, H, W] per channel.

    Output size per axis: (H * up + pad0 + pad1 - filter_size) // down + 1.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    N, C, H, W = x.shape
    px0, px1, py0, py1 = _parse_padding(padding)

    # Zero insertion: every pixel followed by up-1 zeros along each axis.
    if up > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(N, C, H * up, W * up)

    # Pad with zeros; negative padding crops.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # conv2d computes a correlation; flip the taps for a true convolution.
    f = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(C, 1, 1, 1), groups=C, stride=down)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat(C, 1, 1, 1), groups=C, stride=(1, down))
        x = F.conv2d(x, f[None, None, :, None].repeat(C, 1, 1, 1), groups=C, stride=(down, 1))
    return x


def filter2d(
    x: torch.Tensor, f: torch.Tensor, padding: int | Sequence[int] = 0, flip_filter: bool = False, gain: float = 1
) -> torch.Tensor:
    """FIR filter that keeps the image size (plus `padding`)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int | Sequence[int] = 0, flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Up-sample by `up` with the FIR filter (gain up**2 keeps the mean)."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    pad = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int | Sequence[int] = 0, flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Down-sample by `down` after low-pass filtering with the FIR filter."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    pad = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain)
