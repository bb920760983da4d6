"""Feature detectors of the metrics, and the registry that builds each one once per device.

- `inception`, `inception_probs`: the FID Inception-v3 with the TensorFlow 'inception-2015-12-05' weights, as ported
  by torch-fidelity (`pt_inception-2015-12-05`, the network torchmetrics uses too), downloaded into the torch hub
  cache on first use. Same graph as NVIDIA's TorchScript translation: TF1-style bilinear resize to 299x299,
  2048-d pool features for FID/KID, softmax of the 1008 logits without the output bias for IS.
- `vgg16`: stand-in for NVIDIA's `vgg16.pt` in precision/recall: torchvision's ImageNet VGG16 (via torch-fidelity),
  4096-d fc7 features after ReLU. NVIDIA's file holds different VGG16 weights, so precision/recall values are close
  to, not equal to, the official ones.
- `toy_probe`, `toy_attributes`: the toy probe shipped with the package (`stylefuse.probe`, no download): 128-d
  penultimate features (`fid_toy`) and the flattened attribute predictions (`coverage_toy`) of toy faces.
- `lpips_vgg`: LPIPS-VGG for PPL (`stylefuse.projection.LpipsDistance`, the projector's distance): the squared
  distance of two images' LPIPS feature vectors, as the official PPL computes it with NVIDIA's `vgg16.pt`.

Every detector maps uint8 images [N, 3, H, W] (any H, W) to float32 [N, D]; `lpips_vgg` maps two float images in
[0, 255] to [N] distances. Tests hand `Detectors` small random modules instead, so nothing is downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch

from stylefuse.errors import NetworkFileError
from stylefuse.probe import ProbeDetector


class InceptionV3(torch.nn.Module):
    """FID Inception-v3: uint8 [N, 3, H, W] -> [N, 2048] pool features or [N, 1008] class probabilities."""

    def __init__(
        self,
        output: str = "features",        # 'features' (FID, KID) or 'probs' (IS: softmax without output bias).
        weights_path: str | None = None,  # Local weights file; None = torch-fidelity's download, cached by torch hub.
    ) -> None:
        super().__init__()
        assert output in ("features", "probs")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.output = output
        self.name = "inception-2015-12-05"
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048" if output == "features" else "logits_unbiased"],
            feature_extractor_weights_path=weights_path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (x,) = self.net(images)
        return x if self.output == "features" else x.softmax(dim=1)

    def extra_repr(self) -> str:
        return f"output={self.output}"


class VGG16Features(torch.nn.Module):
    """Precision/recall features: uint8 [N, 3, H, W] -> [N, 4096] (torchvision VGG16 fc7 after ReLU, 224x224)."""

    def __init__(self, weights_path: str | None = None) -> None:  # None = torchvision's ImageNet weights (torch hub).
        super().__init__()
        from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

        self.name = "vgg16-torchvision"
        self.net = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=weights_path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (x,) = self.net(images)
        return x


def lpips_distance() -> torch.nn.Module:
    """PPL's detector: LPIPS-VGG with the pretrained VGG trunk (downloaded once into the torch hub cache)."""
    from stylefuse.projection.lpips import LpipsDistance, lpips_vgg  # lpips imports torchvision: only when needed

    return LpipsDistance(lpips_vgg())


# Picklable (no lambdas): ddp_spawn pickles the trainer's callbacks, and with them these factories.
DETECTOR_FACTORIES: dict[str, Callable[[], torch.nn.Module]] = {
    "inception": functools.partial(InceptionV3, "features"),
    "inception_probs": functools.partial(InceptionV3, "probs"),
    "vgg16": VGG16Features,
    "lpips_vgg": lpips_distance,
    "toy_probe": functools.partial(ProbeDetector, "features"),
    "toy_attributes": functools.partial(ProbeDetector, "attributes"),
}


class Detectors:
    """Builds each named detector once per device (eval, no grad); `modules` replaces any of them (tests)."""

    def __init__(self, modules: Mapping[str, torch.nn.Module] | None = None,
                 factories: Mapping[str, Callable[[], torch.nn.Module]] = DETECTOR_FACTORIES) -> None:
        self.modules = dict(modules or {})
        self.factories = dict(factories)
        self._built: dict[tuple[str, torch.device], torch.nn.Module] = {}

    def get(self, name: str, device: torch.device, rank: int = 0, num_gpus: int = 1) -> torch.nn.Module:
        key = (name, torch.device(device))
        if key not in self._built:
            if name in self.modules:
                module = self.modules[name]
            else:
                # Rank 0 downloads the weights first; the others then read them from the cache.
                if rank != 0 and num_gpus > 1:
                    torch.distributed.barrier()
                module = build_detector(name, self.factories[name])
                if rank == 0 and num_gpus > 1:
                    torch.distributed.barrier()
            self._built[key] = module.eval().requires_grad_(False).to(device)
        return self._built[key]


def build_detector(name: str, factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Runs `factory`, turning a failed weight download or a damaged weight file into a one-line error."""
    try:
        return factory()
    except (OSError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NetworkFileError(f"cannot load the weights of the {name} metric detector ({reason}); they are downloaded "
                               f"once into {torch.hub.get_dir()}/checkpoints: check the internet connection, or copy "
                               f"the file there (set TORCH_HOME to use another folder)") from err


def detector_name(detector: torch.nn.Module) -> str:
    """Short name used in cache file names."""
    return str(getattr(detector, "name", type(detector).__name__))
