"""G_ema: the official decay formula with ramp-up, parameters averaged and buffers copied."""

from __future__ import annotations

import pytest
import torch

from stylefuse.training.ema import ema_beta, update_ema


def test_beta_follows_the_official_formula():
    assert ema_beta(batch_size=4, ema_kimg=10, ema_rampup=None, cur_nimg=0) == pytest.approx(0.5 ** (4 / 10000))
    # Ramp-up: half-life min(10000, 20000 * 0.05) = 1000 images.
    assert ema_beta(batch_size=4, ema_kimg=10, ema_rampup=0.05, cur_nimg=20000) == pytest.approx(0.5 ** (4 / 1000))
    assert ema_beta(batch_size=4, ema_kimg=10, ema_rampup=0.05, cur_nimg=0) == 0  # G_ema becomes G at the start


def test_update_averages_parameters_and_copies_buffers():
    G, G_ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        G.weight.fill_(2.0)
        G.running_mean.fill_(5.0)
    update_ema(G_ema, G, beta=0.75)
    torch.testing.assert_close(G_ema.weight, torch.full([3], 1.25))  # 1 + (2 - 1) * 0.25
    torch.testing.assert_close(G_ema.running_mean, torch.full([3], 5.0))
