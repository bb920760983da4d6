"""GAN inversion: the official StyleGAN2-ADA projector (W) and its W+ variant, batched, and the projection job."""

from stylefuse.projection.lpips import LpipsDistance
from stylefuse.projection.projector import Projection, Projector

__all__ = ["LpipsDistance", "Projection", "Projector"]
