"""Running statistics of detector features: every row (KID, PR, IS) and/or float64 mean and covariance (FID)."""

from __future__ import annotations

import numpy as np
import torch

from stylefuse.utils.files import atomic_write, torch_save


class FeatureStats:
    """Accumulates [N, D] feature batches up to `max_items` rows, in the order they are appended."""

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: int | None = None) -> None:
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: int | None = None
        self.all_features: list[torch.Tensor] = []
        self.raw_mean: torch.Tensor | None = None  # [D] float64, sum of rows
        self.raw_cov: torch.Tensor | None = None   # [D, D] float64, sum of outer products

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: torch.Tensor) -> None:
        assert x.ndim == 2, f"features must be [N, D], got {list(x.shape)}"
        x = x.detach().to("cpu", torch.float32)
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        if x.shape[0] == 0:
            return
        if self.num_features is None:
            self.num_features = x.shape[1]
            self.raw_mean = torch.zeros([self.num_features], dtype=torch.float64)
            self.raw_cov = torch.zeros([self.num_features, self.num_features], dtype=torch.float64)
        assert x.shape[1] == self.num_features, f"expected {self.num_features} features, got {x.shape[1]}"
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.to(torch.float64)
            self.raw_mean += x64.sum(dim=0)
            self.raw_cov += x64.T @ x64

    def get_all(self) -> torch.Tensor:
        """[num_items, D] float32."""
        assert self.capture_all
        return torch.cat(self.all_features) if self.all_features else torch.zeros([0, self.num_features or 0])

    def get_mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """float64 mean [D] and biased covariance [D, D] (divided by N, as the official FID)."""
        assert self.capture_mean_cov and self.num_items > 0
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items - torch.outer(mean, mean)
        return mean.numpy(), cov.numpy()

    def save(self, path: str) -> None:
        """Writes plain tensors (loadable with `weights_only=True`); atomic, so readers never see half a file."""
        state = dict(capture_all=self.capture_all, capture_mean_cov=self.capture_mean_cov, max_items=self.max_items,
                     num_items=self.num_items, num_features=self.num_features, raw_mean=self.raw_mean,
                     raw_cov=self.raw_cov, all_features=self.get_all() if self.capture_all else None)
        atomic_write(path, lambda tmp: torch_save(state, tmp))

    @staticmethod
    def load(path: str) -> FeatureStats:
        state = torch.load(path, map_location="cpu", weights_only=True)
        stats = FeatureStats(state["capture_all"], state["capture_mean_cov"], state["max_items"])
        stats.num_items = state["num_items"]
        stats.num_features = state["num_features"]
        stats.raw_mean = state["raw_mean"]
        stats.raw_cov = state["raw_cov"]
        stats.all_features = [state["all_features"]] if state["capture_all"] else []
        return stats
