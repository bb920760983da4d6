"""Adaptive discriminator augmentation: the augmentation pipe and the heuristic that tunes its probability."""

from stylefuse.augment.ada import AdaController
from stylefuse.augment.pipe import AugmentPipe

__all__ = ["AdaController", "AugmentPipe"]
