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
    taps = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # conv2d computes a correlation; flip the taps for a true convolution.
        taps = taps.flip(list(range(taps.ndim)))
    # On CPU, depthwise convolutions of few channels (images) are an order of magnitude faster channels-last.
    few_channels_on_cpu = x.device.type == "cpu" and x.shape[1] < 16
    channels_last = few_channels_on_cpu and not x.is_contiguous(memory_format=torch.channels_last)
    px0, px1, py0, py1 = _parse_padding(padding)
    if taps.ndim == 1:  # Separable: one pass per axis.
        y = _fir_pass(x, taps[None, :], (1, up), (1, down), (px0, px1, 0, 0), channels_last)
        y = _fir_pass(y, taps[:, None], (up, 1), (down, 1), (0, 0, py0, py1), channels_last)
    else:
        y = _fir_pass(x, taps, (up, up), (down, down), (px0, px1, py0, py1), channels_last)
    return y.contiguous() if channels_last else y


def _fir_pass(x: torch.Tensor, taps: torch.Tensor, up: tuple[int, int], down: tuple[int, int],
              padding: tuple[int, int, int, int], channels_last: bool) -> torch.Tensor:
    """Per-channel correlation with `taps` [kh, kw] of `x` zero-upsampled by `up` (y, x), padded, decimated."""
    N, C, H, W = x.shape
    kh, kw = taps.shape
    (uy, ux), (dy, dx) = up, down
    px0, px1, py0, py1 = padding
    weight = taps[None, None].repeat(C, 1, 1, 1)
    if (uy > 1 or ux > 1) and (kh == 1 or kw == 1):
        # One axis of a separable filter (the augment pipe's 12 taps at twice the resolution): a transposed
        # convolution inserts the zeros without multiplying them. It yields the full convolution; shift the padding
        # by the filter's reach and crop what is negative.
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - ux), py0 - (kh - 1), py1 - (kh - uy)
        crop_x, crop_y = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        x = F.conv_transpose2d(x, weight.flip([2, 3]), stride=(uy, ux), padding=(crop_y, crop_x), groups=C)
        x = _pad(x, px0 + crop_x, px1 + crop_x, py0 + crop_y, py1 + crop_y)
        return x[:, :, ::dy, ::dx] if dy > 1 or dx > 1 else x
    if uy > 1 or ux > 1:
        # 2-D filters: zero insertion and the plain convolution below, the official computation bit for bit (the
        # projector's parity with the official one relies on it).
        x = F.pad(x.reshape(N, C, H, 1, W, 1), [0, ux - 1, 0, 0, 0, uy - 1]).reshape(N, C, H * uy, W * ux)
    # The convolution pads symmetrically for free; only the asymmetric rest (or a crop) costs a copy.
    sym_x, sym_y = max(min(px0, px1), 0), max(min(py0, py1), 0)
    x = _pad(x, px0 - sym_x, px1 - sym_x, py0 - sym_y, py1 - sym_y)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return F.conv2d(x, weight, stride=(dy, dx), padding=(sym_y, sym_x), groups=C)


def _pad(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero padding; negative values crop."""
    if px0 == px1 == py0 == py1 == 0:
        return x
    return F.pad(x, [px0, px1, py0, py1])


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
