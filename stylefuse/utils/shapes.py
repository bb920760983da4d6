"""Shape checks at module boundaries."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | None]) -> None:
    """Raises if `tensor` does not have the shape `ref_shape` (None = any size)."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f"Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is not None and size != ref_size:
            raise AssertionError(f"Wrong size for dimension {idx}: got {size}, expected {ref_size}")


def is_power_of_two(n: int) -> bool:
    """n is 1, 2, 4, 8, ... (image resolutions of the networks and datasets)."""
    return n >= 1 and n & (n - 1) == 0
