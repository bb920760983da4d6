"""bias_act: bias, activation, gain and clamp in the official order."""

from __future__ import annotations

import math

import torch

from stylefuse.ops import bias_act


def test_bias_act_order_gain_and_clamp():
    x, b = torch.tensor([[-2.0, 0.5, 3.0]]), torch.tensor([1.0, -1.0, 0.0])
    y = bias_act(x, b, act="lrelu", gain=None, clamp=3.0)
    expected = torch.tensor([[-0.2, -0.1, 3.0]]) * math.sqrt(2)
    expected = expected.clamp(-3, 3)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(bias_act(x, b), x + b)
