"""Stand-ins of the metrics tests: an in-memory dataset that counts reads, small random detectors instead of
Inception/VGG16 (nothing is downloaded), the metric options around a tiny G."""

from __future__ import annotations

import numpy as np
import torch

from stylefuse.metrics import Detectors, MetricOptions
from stylefuse.metrics.collect import dataset_features
from stylefuse.metrics.stats import FeatureStats
from tests.helpers import tiny_generator


class MemoryDataset(torch.utils.data.Dataset):
    """In-memory stand-in for the stylefuse datasets; counts image reads."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, name: str = "mem") -> None:
        self.images = images  # uint8 [N, C, H, W]
        self.labels = np.zeros([len(images), 0], np.float32) if labels is None else labels
        self.name = name
        self.training_set_kwargs = dict(class_name="tests.MemoryDataset", name=name, max_size=None, xflip=False,
                                        resolution=images.shape[2], use_labels=labels is not None)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        self.reads += 1
        return self.images[idx], self.labels[idx]

    def get_label(self, idx: int) -> np.ndarray:
        return self.labels[idx]


class RandomFeatures(torch.nn.Module):
    """Tiny random 'Inception': uint8 [N, 3, H, W] -> [N, dim]."""

    def __init__(self, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.name = "random"
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)
        self.fc = torch.nn.Linear(16, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        x = torch.relu(self.conv(images.float() / 127.5 - 1))
        return self.fc(x.mean([2, 3]))


class ConstantProbs(torch.nn.Module):
    """A classifier that predicts the same distribution for every image."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.5, 0.3, 0.2]).expand(images.shape[0], 3)


def random_images(n: int, seed: int = 0, lo: int = 0, hi: int = 200) -> np.ndarray:
    """n uint8 [3, 32, 32] images with values in [lo, hi)."""
    return np.random.RandomState(seed).randint(lo, hi, size=[n, 3, 32, 32]).astype(np.uint8)


def make_opts(dataset: MemoryDataset, G: torch.nn.Module | None = None, **kwargs) -> MetricOptions:
    """Metric options on `dataset` with the random detectors and, unless given, the tiny G of seed 0."""
    detectors = kwargs.pop("detectors", {"inception": RandomFeatures(), "vgg16": RandomFeatures(dim=6, seed=1)})
    kwargs = dict(dict(batch_size=16, batch_gen=4, verbose=False), **kwargs)
    G = G if G is not None else tiny_generator(seed=0).eval()
    return MetricOptions(G=G, dataset_kwargs=dict(dataset.training_set_kwargs), dataset=dataset,
                         detectors=Detectors(detectors), **kwargs)


def shifted_stats(images: np.ndarray, shifts: list[int], **capture) -> list[FeatureStats]:
    """Detector statistics of `images + shift` for each shift, through the real-data path."""
    detector = RandomFeatures()
    out = []
    for shift in shifts:
        dataset = MemoryDataset((images.astype(np.int64) + shift).astype(np.uint8), name=f"shift{shift}")
        out.append(dataset_features(make_opts(dataset, detectors={"inception": detector}), "inception", None,
                                    **capture))
    return out
