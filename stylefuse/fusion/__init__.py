"""Style fusion: image 1's latent code takes image 2's in a layer range (the paper's Figure 8)."""

from stylefuse.fusion.ranges import LayerRange, fuse_ws, resolve_ranges, scale_range

__all__ = ["LayerRange", "fuse_ws", "resolve_ranges", "scale_range"]
