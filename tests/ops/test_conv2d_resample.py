"""conv2d_resample: convolution fused with FIR up/down-sampling, against its definition (spec 2.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylefuse.ops import conv2d_resample, downsample2d, setup_filter, upfirdn2d


def test_conv2d_resample_up_is_a_true_convolution_after_zero_insertion():
    # Spec 2.4: zero-insert x2, pad [3, 2], 4x4 filter x4, true convolution with w.
    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 5, 5, dtype=torch.float64), torch.randn(6, 4, 3, 3, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    ours = conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    y = upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4)
    ref = F.conv2d(y, w.flip([2, 3]))
    torch.testing.assert_close(ours, ref)
    alt = upfirdn2d(F.conv_transpose2d(x, w.transpose(0, 1), stride=2), f, padding=[1, 1, 1, 1], gain=4)
    torch.testing.assert_close(ours, alt)


def test_conv2d_resample_down_and_grouped_up():
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    x, w = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(6, 4, 3, 3, dtype=torch.float64)
    ours = conv2d_resample(x, w, f=f, down=2, padding=1)
    torch.testing.assert_close(ours, F.conv2d(upfirdn2d(x, f, padding=2), w, stride=2))
    skip = conv2d_resample(x, w[:, :, :1, :1], f=f, down=2)
    torch.testing.assert_close(skip, F.conv2d(downsample2d(x, f), w[:, :, :1, :1]))
    # Grouped (fused modconv) up-sampling equals running each group alone.
    xs, ws = torch.randn(1, 2 * 4, 5, 5, dtype=torch.float64), torch.randn(2 * 6, 4, 3, 3, dtype=torch.float64)
    grouped = conv2d_resample(xs, ws, f=f, up=2, padding=1, groups=2, flip_weight=False)
    single = [conv2d_resample(xs[:, 4 * g:4 * g + 4], ws[6 * g:6 * g + 6], f=f, up=2, padding=1, flip_weight=False)
              for g in range(2)]
    torch.testing.assert_close(grouped, torch.cat(single, dim=1))
