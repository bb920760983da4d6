"""Batched homogeneous transformation matrices for the augmentation pipe.

Geometry uses 3x3 matrices acting on (x, y, 1) pixel coordinates; colour uses 4x4 matrices acting on
(r, g, b, 1). Every function takes per-sample parameters with a leading batch dimension N.
"""

from __future__ import annotations

import kornia
import torch


def homogeneous(linear: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """[N, d, d] linear part and optional [N, d] offset -> [N, d + 1, d + 1]."""
    n, d = linear.shape[0], linear.shape[-1]
    matrix = torch.zeros([n, d + 1, d + 1], dtype=linear.dtype, device=linear.device)
    matrix[:, :d, :d] = linear
    if offset is not None:
        matrix[:, :d, d] = offset
    matrix[:, d, d] = 1
    return matrix


def translation(t: torch.Tensor) -> torch.Tensor:
    """[N, d] offsets -> [N, d + 1, d + 1]."""
    n, d = t.shape
    return homogeneous(torch.eye(d, dtype=t.dtype, device=t.device).expand(n, d, d), t)


def scaling(s: torch.Tensor) -> torch.Tensor:
    """[N, d] per-axis factors -> [N, d + 1, d + 1]."""
    return homogeneous(torch.diag_embed(s))


def rotation2d(theta: torch.Tensor) -> torch.Tensor:
    """[N] angles in radians -> [N, 3, 3], turning the x axis towards the y axis."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    return homogeneous(torch.stack([cos, -sin, sin, cos], dim=-1).reshape(-1, 2, 2))


def rotation3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Unit [3] axis and [N] angles -> [N, 4, 4] right-handed rotation about the axis (Rodrigues)."""
    return homogeneous(kornia.geometry.conversions.axis_angle_to_rotation_matrix(axis * theta[:, None]))
