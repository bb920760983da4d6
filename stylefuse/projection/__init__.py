"""GAN inversion: the official StyleGAN2-ADA projector (W), its W+ variants and pivotal tuning, batched; no config
needed.

    G = load_generator("ffhq")
    w = project_image_file(G, Projector(G, space="w+"), "face.png", "out/face")  # [1, num_ws, w_dim]

`projection.job` is the project.py job around it.
"""

from stylefuse.projection.lpips import LpipsDistance, lpips_vgg
from stylefuse.projection.projector import Projection, Projector
from stylefuse.projection.pti import PivotalTuner, PivotalTuningProjector, save_tuned_network
from stylefuse.projection.targets import prepare_targets, project_image_file, project_targets, render

__all__ = ["LpipsDistance", "PivotalTuner", "PivotalTuningProjector", "Projection", "Projector", "lpips_vgg",
           "prepare_targets", "project_image_file", "project_targets", "render", "save_tuned_network"]
