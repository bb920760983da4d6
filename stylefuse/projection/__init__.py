"""GAN inversion: the official StyleGAN2-ADA projector (W) and its W+ variant, batched; no config needed.

    G = load_generator("ffhq")
    w = project_image_file(G, Projector(G, space="w+"), "face.png", "out/face")  # [1, num_ws, w_dim]

`projection.job` is the project.py job around it.
"""

from stylefuse.projection.lpips import LpipsDistance, lpips_vgg
from stylefuse.projection.projector import Projection, Projector
from stylefuse.projection.targets import project_image_file, project_targets, render

__all__ = ["LpipsDistance", "Projection", "Projector", "lpips_vgg", "project_image_file", "project_targets", "render"]
