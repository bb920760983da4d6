"""LPIPS-VGG in the form the official projector uses, shared by projection and the PPL metric."""

from __future__ import annotations

import lpips
import torch
import torch.nn.functional as F

from stylefuse.errors import ConfigError


class LpipsDistance(torch.nn.Module):
    """LPIPS between images in [0, 255] in the form the official projector uses: each image becomes one feature
    vector, the unit-normalized VGG features of every layer scaled by sqrt(LPIPS layer weight / (H * W)) and
    concatenated, and the distance is the squared L2 distance of two vectors (= the LPIPS distance). A target's
    vector is computed once per projection."""

    def __init__(self, lpips_model: lpips.LPIPS):
        super().__init__()
        self.model = lpips_model.eval().requires_grad_(False)
        weights = [lin.model[-1].weight for lin in self.model.lins] if self.model.lpips else []
        if not weights or min(float(w.min()) for w in weights) < 0:
            raise ConfigError("the projector needs LPIPS's learned, non-negative layer weights: set "
                              "projector.lpips_model.lpips=true and pretrained=true")

    def features(self, img: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] in [0, 255] -> [N, num_features]
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        if img.shape[2] > 256:
            img = F.interpolate(img, size=(256, 256), mode="area")  # VGG was built for 224x224 images.
        x = self.model.scaling_layer(img / 127.5 - 1)
        feats = []
        for lin, f in zip(self.model.lins, self.model.net(x)):
            scale = (lin.model[-1].weight.reshape(1, -1, 1, 1) / (f.shape[2] * f.shape[3])).sqrt()
            feats.append((lpips.normalize_tensor(f) * scale).flatten(1))
        return torch.cat(feats, dim=1)

    def distance(self, feats0: torch.Tensor, feats1: torch.Tensor) -> torch.Tensor:  # -> [N]
        return (feats0 - feats1).square().sum(dim=1)

