"""The `align` knob of project.py and fuse.py: which aligner, if any, crops the photos before projection."""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

from stylefuse.errors import ConfigError

log = logging.getLogger(__name__)

ALIGN_CHOICES = ("auto", "ffhq", "none")
# Networks trained on FFHQ-aligned faces, by the start of their file name: CelebA-HQ is cropped the same way, and
# MetFaces (faces in artworks) was aligned with FFHQ's own script.
FFHQ_ALIGNED_NETWORKS = ("ffhq", "celebahq", "metfaces")


def resolve_aligner(align: str, network: str | os.PathLike) -> str | None:
    """`align` -> "ffhq" or None (photos used as they are). `auto` picks "ffhq" for a network whose name, file name
    or URL file name starts with ffhq, celebahq or metfaces, and says so in the log."""
    align = str(align)
    if align not in ALIGN_CHOICES:
        raise ConfigError(f"unknown align={align!r}: use one of {', '.join(ALIGN_CHOICES)}")
    if align != "auto":
        return None if align == "none" else align
    text = os.fspath(network)
    name = Path(urllib.parse.urlparse(text).path if "://" in text else text).name.lower()
    if not name.startswith(FFHQ_ALIGNED_NETWORKS):
        return None
    log.info(f"align=auto: photos are aligned as FFHQ for network {network} (align=none uses them as they are)")
    return "ffhq"
