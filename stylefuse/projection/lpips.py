"""LPIPS-VGG, the one perceptual distance of the package: the projector's loss and PPL's distance, both in the form
the official code computes them (NVIDIA's `vgg16.pt` with `return_lpips=True`)."""

from __future__ import annotations

import os
import warnings

import lpips
import torch
import torch.nn.functional as F
import torchvision

from stylefuse.errors import ConfigError, NetworkFileError

VGG16_URL = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url  # what lpips' trunk downloads on first use


def lpips_vgg(pnet_rand: bool = False) -> lpips.LPIPS:
    """The `lpips` package's LPIPS-VGG (Zhang et al. v0.1 layer weights, shipped with the package). Its VGG trunk
    has torchvision's ImageNet weights, downloaded once into the torch hub cache; `pnet_rand=True` keeps the trunk
    random instead (nothing is downloaded: tests and benchmarks). Offline without the cached weights file, a
    NetworkFileError names the file and where it goes."""
    try:
        with warnings.catch_warnings():  # lpips calls torchvision with its deprecated `pretrained` argument
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            return lpips.LPIPS(net="vgg", pnet_rand=pnet_rand, verbose=False)
    except OSError as err:  # urllib's URLError, a refused connection, a timeout, an unwritable cache
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise NetworkFileError(
            f"LPIPS needs the VGG16 ImageNet weights {os.path.basename(VGG16_URL)}, which could not be downloaded "
            f"({getattr(err, 'reason', None) or err}): put that file (from {VGG16_URL}) into {folder}/, or, for "
            f"tests only, set projector.lpips_model.pnet_rand=true (a random VGG trunk, useless for real photos)"
        ) from None


def lpips_trunk(model: lpips.LPIPS) -> str:
    """Which LPIPS a distance is, as results record it: `vgg16-imagenet` (the real one) or `vgg16-random`."""
    return f"{ {'vgg': 'vgg16'}.get(model.pnet_type, model.pnet_type)}-{'random' if model.pnet_rand else 'imagenet'}"


class LpipsDistance(torch.nn.Module):
    """LPIPS between images in [0, 255] in the official form: each image becomes one feature vector, the
    unit-normalized VGG features of every layer scaled by sqrt(LPIPS layer weight / (H * W)) and concatenated, and
    the distance is the squared L2 distance of two vectors (= the LPIPS distance). The projector computes a target's
    vector once per projection; `forward` gives the distance of two image batches (PPL)."""

    def __init__(self, lpips_model: lpips.LPIPS):
        super().__init__()
        self.name = "lpips-vgg"
        self.model = lpips_model.eval().requires_grad_(False)
        self.trunk = lpips_trunk(lpips_model)
        weights = [lin.model[-1].weight for lin in self.model.lins] if self.model.lpips else []
        if not weights or min(float(w.min()) for w in weights) < 0:
            raise ConfigError("LPIPS distances need the learned, non-negative LPIPS layer weights: build the model "
                              "with lpips.LPIPS(lpips=True, pretrained=True), e.g. stylefuse.projection.lpips_vgg()")

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

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] x 2 -> [N]
        return self.distance(self.features(img0), self.features(img1))
