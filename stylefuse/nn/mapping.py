"""The mapping network z (+ label c) -> w, with the running average of w used for truncation."""

from __future__ import annotations

import torch

from stylefuse.nn.layers import FullyConnectedLayer, normalize_2nd_moment
from stylefuse.utils.shapes import assert_shape


class MappingNetwork(torch.nn.Module):
    def __init__(
        self,
        z_dim: int,                          # Input latent (Z) dimensionality, 0 = no latent.
        c_dim: int,                          # Conditioning label (C) dimensionality, 0 = no label.
        w_dim: int,                          # Intermediate latent (W) dimensionality.
        num_ws: int | None,                  # Number of intermediate latents to output, None = do not broadcast.
        num_layers: int = 8,                 # Number of mapping layers.
        embed_features: int | None = None,   # Label embedding dimensionality, None = same as w_dim.
        layer_features: int | None = None,   # Intermediate features in the mapping layers, None = w_dim.
        activation: str = "lrelu",           # Activation function: 'relu', 'lrelu', etc.
        lr_multiplier: float = 0.01,         # Learning rate multiplier for the mapping layers.
        w_avg_beta: float | None = 0.995,    # Decay of the running average of W, None = do not track.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)

        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,              # [N, z_dim]
        c: torch.Tensor | None,              # [N, c_dim]
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,  # Truncate only the first `cutoff` ws, None = all.
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:                       # [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None)
        # Normalize the latent and the label embedding separately, then concatenate.
        x = None
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        # Track the average w over training batches; it is the centre of truncation.
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            assert self.w_avg_beta is not None
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi),
                               x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
