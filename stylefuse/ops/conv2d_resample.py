"""2-D convolution combined with FIR up- or down-sampling, in the cheapest exact order (plain PyTorch).

Conventions follow the official implementation: `flip_weight=True` means correlation (what `F.conv2d` does),
`flip_weight=False` a true convolution. StyleGAN2 up-sampling convolutions are true convolutions (transposed
convolution followed by the blur), down-sampling ones are correlations (blur, then strided convolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylefuse.ops.upfirdn2d import filter_size, upfirdn2d


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    if not flip_weight and (w.shape[-1] > 1 or w.shape[-2] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,           # [N, in_channels, H, W]
    w: torch.Tensor,           # [out_channels, in_channels // groups, kh, kw]
    f: torch.Tensor | None = None,  # FIR filter for resampling (from setup_filter), None if up == down == 1.
    up: int = 1,
    down: int = 1,
    padding: int = 0,          # Padding of the convolution itself, in input pixels.
    groups: int = 1,
    flip_weight: bool = True,  # True = correlation, False = true convolution.
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolution with optional 2x up- or down-sampling through the FIR filter `f`."""
    assert up == 1 or down == 1, "up- and down-sampling in one convolution is not used by StyleGAN2"
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1 and down == 1:
        return _conv(x, w, padding=padding, groups=groups, flip_weight=flip_weight)

    fw, fh = filter_size(f)
    p = padding
    if up > 1:
        px0, px1 = p + (fw + up - 1) // 2, p + (fw - up) // 2
        py0, py1 = p + (fh + up - 1) // 2, p + (fh - up) // 2
    else:
        px0, px1 = p + (fw - down + 1) // 2, p + (fw - down) // 2
        py0, py1 = p + (fh - down + 1) // 2, p + (fh - down) // 2

    if kw == 1 and kh == 1:
        if down > 1:  # 1x1 down: filter and decimate first, fewer pixels to convolve.
            x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
            return _conv(x, w, groups=groups, flip_weight=flip_weight)
        # 1x1 up: convolve first, then up-sample.
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    if down > 1:  # Blur, then strided convolution.
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up-sampling: the transposed convolution does the zero insertion, the blur follows.
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter)
