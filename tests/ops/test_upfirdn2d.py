"""upfirdn2d, its filters and the up/down-sampling wrappers against direct definitions (spec section 2.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylefuse.ops import downsample2d, setup_filter, upfirdn2d, upsample2d


def naive_upfirdn2d(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """Spec 2.4 step by step, with loops: zero insertion, pad/crop, true convolution ('valid'), decimation."""
    N, C, H, W = x.shape
    u = np.zeros((N, C, H * up, W * up))
    u[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0): u.shape[2] - max(-py1, 0), max(-px0, 0): u.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    out = np.zeros((N, C, u.shape[2] - fh + 1, u.shape[3] - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            # True convolution: the filter is flipped relative to a correlation.
            out[:, :, i, j] = (u[:, :, i:i + fh, j:j + fw] * f[::-1, ::-1]).sum(axis=(2, 3))
    return out[:, :, ::down, ::down]


def test_setup_filter_blur_and_separable():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    g = setup_filter(list(range(1, 13)))
    assert g.shape == (12,) and abs(float(g.sum()) - 1) < 1e-6
    torch.testing.assert_close(setup_filter([1, 3, 3, 1], gain=4).sum(), torch.tensor(4.0))


@pytest.mark.parametrize("up, down, pad", [(1, 1, (1, 2, 0, 3)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                           (2, 1, (-1, 0, 1, -2))])
def test_upfirdn2d_matches_the_definition(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    f = torch.rand(4, 3, dtype=torch.float64)  # non-symmetric: catches a missing flip
    ours = upfirdn2d(x, f, up=up, down=down, padding=pad)
    ref = naive_upfirdn2d(x.numpy(), f.numpy(), up, down, pad)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    flipped = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=True)
    np.testing.assert_allclose(flipped.numpy(), naive_upfirdn2d(x.numpy(), f.flip([0, 1]).numpy(), up, down, pad),
                               atol=1e-12)


def test_separable_filter_equals_its_outer_product():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    taps = torch.rand(8, dtype=torch.float64)
    sep = setup_filter(taps, separable=True).double()
    full = setup_filter(taps, separable=False).double()
    torch.testing.assert_close(upsample2d(x, sep), upsample2d(x, full))
    torch.testing.assert_close(downsample2d(x, sep), downsample2d(x, full))


def test_up_and_down_sampling_preserve_constants():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 1, 8, 8)
    up = upsample2d(x, f)
    assert up.shape == (1, 1, 16, 16)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    down = downsample2d(x, f)
    assert down.shape == (1, 1, 4, 4)
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def gradient_case(channels: int, separable: bool, up: int, down: int):
    """A float64 input [1, channels, 5, 6] and upfirdn2d with a random (non-symmetric) filter."""
    torch.manual_seed(0)
    x = torch.randn(1, channels, 5, 6, dtype=torch.float64, requires_grad=True)
    f = setup_filter(torch.rand(8 if separable else 4, dtype=torch.float64), separable=separable).double()
    return (lambda t: upfirdn2d(t, f, up=up, down=down, padding=(2, 1, 1, 2))), x


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("up, down", [(2, 1), (1, 2)])
def test_upfirdn2d_gradients_to_second_order(separable, up, down):
    # R1 and path-length regularization differentiate through these filters twice. Few channels (images) take the
    # channels-last CPU path; every entry of both Jacobians is checked.
    fn, x = gradient_case(3, separable, up, down)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("up, down", [(2, 1), (1, 2)])
def test_upfirdn2d_many_channel_gradients(separable, up, down):
    # 16 channels or more (feature maps) take the contiguous path. First order entry by entry; second order through
    # random projections (fast_mode compares v^T J u of the analytical and the numerical Jacobian, which a wrong
    # entry changes), a fraction of the cost of the 600 x 600 second-order Jacobian.
    fn, x = gradient_case(20, separable, up, down)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_upfirdn2d_many_channels_match_the_definition():
    torch.manual_seed(0)
    x = torch.randn(1, 20, 6, 5, dtype=torch.float64)
    f = torch.rand(4, 3, dtype=torch.float64)
    for up, down in [(1, 1), (2, 1), (1, 2)]:
        np.testing.assert_allclose(upfirdn2d(x, f, up=up, down=down, padding=(1, 2, 2, 1)).numpy(),
                                   naive_upfirdn2d(x.numpy(), f.numpy(), up, down, (1, 2, 2, 1)), atol=1e-12)
