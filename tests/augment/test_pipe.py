"""AugmentPipe: identity at p = 0, each augmentation against a hand-computed version, firing rates, gradients,
presets.

Hand-computed versions replay the pipe's random draws from the same seed: each augmentation draws its values, then
one uniform per sample that decides whether it fires (the official draw order, so the official pipe gives the same
images for the same RNG state).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from stylefuse.augment import AugmentPipe
from stylefuse.augment.filters import SYM2, SYM6, octave_filter_bank
from stylefuse.errors import ConfigError
from tests.helpers import compose_cfg

ATOL = 1e-5
MULTIPLIERS = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip",
               "hue", "saturation", "imgfilter", "noise", "cutout"]
BLIT, GEOM, COLOR = MULTIPLIERS[0:3], MULTIPLIERS[3:7], MULTIPLIERS[7:12]
PRESETS = {  # Table of the official --augpipe presets.
    "blit": BLIT, "geom": GEOM, "color": COLOR, "filter": ["imgfilter"], "noise": ["noise"], "cutout": ["cutout"],
    "bg": BLIT + GEOM, "bgc": BLIT + GEOM + COLOR, "bgcf": BLIT + GEOM + COLOR + ["imgfilter"],
    "bgcfn": BLIT + GEOM + COLOR + ["imgfilter", "noise"], "bgcfnc": MULTIPLIERS,
}


def make_pipe(p: float = 1.0, **kwargs) -> AugmentPipe:
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


def random_images(n: int = 8, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand([n, c, h, w], generator=torch.Generator().manual_seed(seed)) * 2 - 1


def augment(pipe: AugmentPipe, images: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return pipe(images)


@pytest.mark.parametrize("preset", ["bgc", "bgcfnc"])
def test_identity_at_p0(preset):
    x = random_images()
    pipe = make_pipe(0.0, **{name: 1 for name in PRESETS[preset]})
    y = augment(pipe, x, seed=1)
    assert y.shape == x.shape
    assert (y - x).abs().max() < ATOL


def test_state_dict_names_match_official():
    pipe = AugmentPipe(xflip=1)
    state = pipe.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"p": (), "Hz_geom": (12,), "Hz_fbank": (4, 43)}
    assert state["p"].item() == 1  # Overall probability before the training loop sets it.
    assert abs(state["Hz_geom"].sum().item() - 1) < 1e-6
    state["p"] = torch.tensor(0.37)
    other = AugmentPipe(xflip=1)
    other.load_state_dict(state)
    assert other.p.item() == pytest.approx(0.37)


# -------------------------------------------------------------------------------------------------------------------
# Blitting, against torch.flip / rot90 / reflect-padded shifts. The warp mirrors the image at 2x resolution between
# the asymmetric sym6 low-passes, so a mirrored axis also passes the even taps of sym6 * sym6 (this is what the
# official pipe computes; only a symmetric wavelet would make it a plain flip).


def mirror_residual(image: torch.Tensor, axes: list[int]) -> np.ndarray:
    """`image` [C, H, W] filtered along `axes` by the mirrored-phase residual of the sym6 resampling."""
    h = np.asarray(SYM6) / np.sum(SYM6)
    residual = 2 * np.convolve(h, h)[0::2]  # 12 taps summing to 1; a unit impulse if h were symmetric.
    out = image.double().numpy()
    for axis in axes:  # 'mirror' = reflection about the edge pixel, like torch's 'reflect' padding.
        out = scipy.ndimage.correlate1d(out, residual, axis=axis, mode="mirror", origin=-1)
    return out


def test_xflip_matches_flip():
    x = random_images(16)
    y = augment(make_pipe(xflip=1), x, seed=2)
    torch.manual_seed(2)
    flip = torch.floor(torch.rand(16) * 2).bool()
    assert 0 < flip.sum() < 16
    for xi, yi, fi in zip(x, y, flip):
        expected = mirror_residual(xi.flip(2), [2]) if fi else xi.numpy()
        assert np.abs(yi.numpy() - expected).max() < ATOL


def test_rotate90_matches_rot90():
    x = random_images(16)
    y = augment(make_pipe(rotate90=1), x, seed=3)
    torch.manual_seed(3)
    k = torch.floor(torch.rand(16) * 4).long()
    assert len(set(k.tolist())) == 4
    mirrored_axes = {0: [], 1: [1], 2: [1, 2], 3: [2]}  # Axes of the output that torch.rot90 reverses.
    for xi, yi, ki in zip(x, y, k.tolist()):
        expected = mirror_residual(torch.rot90(xi, ki, dims=(1, 2)), mirrored_axes[ki])
        assert np.abs(yi.numpy() - expected).max() < ATOL


def test_xint_matches_reflected_shift():
    x = random_images(16)
    y = augment(make_pipe(xint=1), x, seed=4)
    torch.manual_seed(4)
    shift = torch.round((torch.rand(16, 2) * 2 - 1) * 0.125 * 32).long()  # Whole pixels, at most 4.
    padded = F.pad(x, [4, 4, 4, 4], mode="reflect")
    expected = torch.stack([padded[i, :, 4 - dy : 36 - dy, 4 - dx : 36 - dx] 
                            for i, (dx, dy) in enumerate(shift.tolist())])
    assert (shift != 0).any(dim=1).sum() >= 12
    assert (y - expected).abs().max() < ATOL


def test_geometry_preserves_constant_image_and_moves_content():
    # A constant image stays constant under any warp (reflected borders, normalized filters) ...
    pipe = make_pipe(**{name: 1 for name in GEOM})
    y = augment(pipe, torch.full([4, 3, 32, 32], 0.3), seed=5)
    assert (y - 0.3).abs().max() < 1e-5
    # ... while a random image changes everywhere.
    x = random_images(4)
    assert ((augment(pipe, x, seed=5) - x).abs().flatten(1).mean(1) > 0.1).all()


# -------------------------------------------------------------------------------------------------------------------
# Colour, against the per-pixel formulas (m = mean of r, g, b: the projection onto the grey axis).


def test_brightness_contrast_match_hand_computed():
    x = random_images()
    y = augment(make_pipe(brightness=1, contrast=1), x, seed=6)
    torch.manual_seed(6)
    b = torch.randn(8) * 0.2
    torch.rand(8)  # Fire decisions (all fire at p = 1).
    c = torch.exp2(torch.randn(8) * 0.5)
    expected = (x + b[:, None, None, None]) * c[:, None, None, None]  # Brightness first, then contrast.
    assert (y - expected).abs().max() < ATOL


def test_lumaflip_and_saturation_match_hand_computed():
    x = random_images()
    m = x.mean(dim=1, keepdim=True)
    y = augment(make_pipe(lumaflip=1), x, seed=7)
    torch.manual_seed(7)
    flip = torch.floor(torch.rand(8) * 2)[:, None, None, None]
    assert (y - (x - 2 * m * flip)).abs().max() < ATOL

    y = augment(make_pipe(saturation=1), x, seed=8)
    torch.manual_seed(8)
    s = torch.exp2(torch.randn(8))[:, None, None, None]
    assert (y - (m + (x - m) * s)).abs().max() < ATOL


def test_hue_rotates_chroma_about_grey_axis():
    x = random_images()
    y = augment(make_pipe(hue=1), x, seed=9)
    torch.manual_seed(9)
    theta = ((torch.rand(8) * 2 - 1) * math.pi)[:, None, None]
    axis = torch.ones(3) / math.sqrt(3)
    m = x.mean(dim=1, keepdim=True)
    d = (x - m).permute(0, 2, 3, 1)  # Chroma, perpendicular to the axis: [N, H, W, 3]
    rotated = d * torch.cos(theta)[..., None] + torch.linalg.cross(axis.expand_as(d), d) * torch.sin(theta)[..., None]
    assert (y - (m + rotated.permute(0, 3, 1, 2))).abs().max() < ATOL


def test_grayscale_color():
    x = random_images(c=1)
    y = augment(make_pipe(brightness=1, contrast=1, hue=1, saturation=1), x, seed=10)  # No hue/saturation for L.
    torch.manual_seed(10)
    b = torch.randn(8) * 0.2
    torch.rand(8)
    c = torch.exp2(torch.randn(8) * 0.5)
    assert (y - (x + b[:, None, None, None]) * c[:, None, None, None]).abs().max() < ATOL


# -------------------------------------------------------------------------------------------------------------------
# Filtering and corruptions.


def test_imgfilter_matches_hand_computed():
    x = random_images(4)
    y = augment(make_pipe(imgfilter=1), x, seed=11)
    torch.manual_seed(11)
    power = np.array([10, 1, 1, 1]) / 13
    bank = octave_filter_bank(SYM2)
    gains = np.ones([4, 4])
    for band in range(4):
        t = np.ones([4, 4])
        t[:, band] = torch.exp2(torch.randn(4)).double().numpy()
        torch.rand(4)
        gains *= t / np.sqrt((power * t**2).sum(axis=1, keepdims=True))
    expected = np.empty(x.shape)
    for i in range(4):
        h = gains[i] @ bank  # 'mirror' = reflection about the edge pixel, like torch's 'reflect'.
        filtered = scipy.ndimage.correlate1d(x[i].double().numpy(), h, axis=2, mode="mirror")
        expected[i] = scipy.ndimage.correlate1d(filtered, h, axis=1, mode="mirror")
    assert np.abs(y.double().numpy() - expected).max() < ATOL


def test_noise_matches_hand_computed():
    x = random_images()
    y = augment(make_pipe(noise=1), x, seed=12)
    torch.manual_seed(12)
    sigma = torch.randn(8).abs() * 0.1
    torch.rand(8)
    expected = x + torch.randn(8, 3, 32, 32) * sigma[:, None, None, None]
    assert (y - expected).abs().max() < ATOL


def test_cutout_matches_hand_computed():
    x = random_images() + 2  # Positive everywhere, so zeros come from the cutout only.
    y = augment(make_pipe(cutout=1), x, seed=13)
    torch.manual_seed(13)
    torch.rand(8)
    center = torch.rand(8, 2).numpy()
    coord = (np.arange(32) + 0.5) / 32
    for i in range(8):
        inside = (np.abs(coord[None, :] - center[i, 0]) < 0.25) & (np.abs(coord[:, None] - center[i, 1]) < 0.25)
        assert 0 < inside.sum() <= 16 * 16
        assert torch.equal(y[i] == 0, torch.from_numpy(inside).expand(3, 32, 32))
        assert torch.equal(y[i][:, ~torch.from_numpy(inside)], x[i][:, ~torch.from_numpy(inside)])


# -------------------------------------------------------------------------------------------------------------------
# Firing rates: each augmentation fires per sample with probability p * multiplier.

# Fraction of firings that visibly change an 8x8 image: x-flip and luma flip are the identity for half of the
# draws, rotate90 for a quarter, xint when both shifts round to 0 (|U(-1, 1)| < 1/2 on each axis).
VISIBLE = {"xflip": 1 / 2, "rotate90": 3 / 4, "xint": 3 / 4, "lumaflip": 1 / 2}


@pytest.mark.parametrize("name", MULTIPLIERS)
def test_firing_rate(name):
    p, multiplier = (0.8, 0.5) if name in ("scale", "hue") else (0.4, 1.0)
    if name == "imgfilter":
        n, c, size = 400, 1, 24
    else:  # Small images; one channel where colour does not matter keeps the warps cheap.
        n, c, size = (2000, 3, 8) if name in COLOR + ["noise", "cutout"] else (1000, 1, 8)
    x = random_images(n, c, size, size)
    changed = (augment(make_pipe(p, **{name: multiplier}), x, seed=14) - x).abs().flatten(1).amax(1) > 1e-3
    prob = p * multiplier
    if name == "imgfilter":
        expected = 1 - (1 - prob) ** 4  # Each of the four bands fires on its own.
    else:
        expected = prob * VISIBLE.get(name, 1.0)
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n)
    assert abs(changed.float().mean().item() - expected) < tolerance


def test_p_above_one_always_fires():
    x = random_images(200, h=8, w=8)
    y = augment(make_pipe(3.0, brightness=0.5, rotate=1), x, seed=15)
    assert ((y - x).abs().flatten(1).amax(1) > 1e-3).all()


# -------------------------------------------------------------------------------------------------------------------
# Gradients: R1 differentiates D(pipe(x)) w.r.t. x and then backpropagates through that gradient.


def test_gradient_is_exact_adjoint():
    # For fixed random draws the pipe is affine in x, so f(x + d) - f(x) = <grad f, d> exactly.
    pipe = make_pipe(0.7, **{name: 1 for name in MULTIPLIERS})
    x = random_images(4).requires_grad_(True)
    w, d = random_images(4, seed=1), random_images(4, seed=2)
    (augment(pipe, x, seed=16) * w).sum().backward()
    with torch.no_grad():
        delta = (augment(pipe, x + d, seed=16) * w).sum() - (augment(pipe, x, seed=16) * w).sum()
    assert (x.grad * d).sum().item() == pytest.approx(delta.item(), rel=1e-4)


def test_double_backward_through_discriminator(tiny_D):
    D = tiny_D()
    pipe = make_pipe(0.8, **{name: 1 for name in MULTIPLIERS})
    x = random_images(2).requires_grad_(True)
    torch.manual_seed(17)
    logits = D(pipe(x), None)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    penalty = grad.square().sum()
    penalty.backward()
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


# -------------------------------------------------------------------------------------------------------------------
# Presets and user errors.


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_composes_and_instantiates(preset):
    cfg = compose_cfg(None, ["+augment=ada", f"augment/pipe={preset}"])
    pipe = AugmentPipe(**cfg.augment.pipe)  # a preset is a complete set of AugmentPipe arguments
    assert {name for name in MULTIPLIERS if getattr(pipe, name) == 1} == set(PRESETS[preset])
    assert all(getattr(pipe, name) == 0 for name in MULTIPLIERS if name not in PRESETS[preset])
    assert (pipe.scale_std, pipe.contrast_std, pipe.imgfilter_bands, pipe.cutout_size) == (0.2, 0.5, [1] * 4, 0.5)


def test_default_pipe_is_bgc_and_strengths_are_overridable():
    for aug in ("ada", "fixed"):
        assert compose_cfg(None, [f"+augment={aug}"]).augment.pipe == compose_cfg(
            None, [f"+augment={aug}", "augment/pipe=bgc"]).augment.pipe
    cfg = compose_cfg(None, ["+augment=ada", "augment.pipe.scale_std=0.3", "augment.pipe.noise=0.5"])
    pipe = AugmentPipe(**cfg.augment.pipe)
    assert (pipe.scale_std, pipe.noise) == (0.3, 0.5)


def test_user_errors_are_one_line():
    with pytest.raises(ConfigError, match="imgfilter_bands needs 4 values"):
        AugmentPipe(imgfilter=1, imgfilter_bands=[1, 1])
    with pytest.raises(ConfigError, match="RGB or grayscale.*got 4 channels"):
        make_pipe(brightness=1)(random_images(c=4))
    with pytest.raises(ConfigError, match="larger than 21x21 pixels, got 16x16"):
        make_pipe(imgfilter=1)(random_images(h=16, w=16))
