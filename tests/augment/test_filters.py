"""The wavelet filters of the augment pipe: the octave filter bank of the image-space filtering."""

from __future__ import annotations

import numpy as np

from stylefuse.augment.filters import SYM2, octave_filter_bank


def test_filter_bank_splits_octaves():
    bank = octave_filter_bank(SYM2)
    assert bank.shape == (4, 43)
    impulse = np.zeros(43)
    impulse[21] = 1
    assert np.abs(bank.sum(axis=0) - impulse).max() < 1e-10  # Unit gains are the identity.
    assert np.abs(bank - bank[:, ::-1]).max() < 1e-12         # Zero phase.
    response = np.abs(np.fft.rfft(bank, n=1024, axis=1))      # [4, 513], frequency 0 .. half the sampling rate.
    peaks = response.argmax(axis=1) / 512                      # In units of half the sampling rate.
    assert peaks[0] == 0
    for band in range(1, 4):  # Band b peaks inside the octave [2^(b-4), 2^(b-3)].
        assert 2.0 ** (band - 4) <= peaks[band] <= 2.0 ** (band - 3)
