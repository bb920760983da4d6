"""Wavelet filters used by the augmentation pipe.

The low-pass taps are the published Daubechies symlet coefficients (`sym6`, `sym2`; PyWavelets'
`pywt.Wavelet('sym6').dec_lo`). An orthogonal wavelet's low-pass H satisfies
|H(w)|^2 + |H(w + pi)|^2 = 2, which is why resampling with it does not leak augmentations into the output and why
the octave bands below sum to the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Low-pass for the 2x up/down-sampling around the geometric warp (12 taps).
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)

# Low-pass from which the image-space filter bank is built (4 taps).
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)


def octave_filter_bank(lowpass: Sequence[float], num_bands: int = 4) -> np.ndarray:
    """Zero-phase filters splitting the spectrum into octaves: [num_bands, taps], lowest band first.

    Row `num_bands - 1` passes the top octave (half the sampling rate and up), each row above it the octave below.
    The rows sum to a unit impulse, so any gain vector of ones leaves an image unchanged.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)      # H(-z): the matching high-pass.
    lo_power = np.convolve(lo, lo[::-1]) / 2    # H(z) H(1/z) / 2, symmetric; lo_power + hi_power = impulse.
    hi_power = np.convolve(hi, hi[::-1]) / 2

    bank = np.ones([1, 1])                      # Before the first split, the lowest band is everything.
    for _ in range(1, num_bands):
        # Move every band found so far one octave down (H(z) -> H(z^2)) and keep only its low half ...
        dilated = np.zeros([bank.shape[0], bank.shape[1] * 2 - 1])
        dilated[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo_power) for row in dilated])
        # ... then the high half of the full spectrum becomes the new top band, centred in the same span.
        top = np.zeros(bank.shape[1])
        start = (bank.shape[1] - hi_power.size) // 2
        top[start : start + hi_power.size] = hi_power
        bank = np.concatenate([bank, top[None]])
    return bank
