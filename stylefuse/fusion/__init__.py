"""Style fusion: image 1's latent code takes image 2's in a layer range (the paper's Figure 8); no config needed.

    w = fuse_ws(w1, w2, (0, 6))  # w1, w2 [1, num_ws, w_dim], e.g. from stylefuse.latents.load_latent

`fusion.job` is the fuse.py job around it.
"""

from stylefuse.fusion.ranges import LayerRange, fuse_ws, resolve_ranges, scale_range
from stylefuse.fusion.sweep import sweep

__all__ = ["LayerRange", "fuse_ws", "resolve_ranges", "scale_range", "sweep"]
