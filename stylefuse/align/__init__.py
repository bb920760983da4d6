"""Face alignment for the FFHQ networks: `align_face(photo)` crops a photo's face as the FFHQ dataset was cropped.

Needs the `stylefuse[align]` extra (dlib's landmark detector). Command line:
    python -m stylefuse.align <image|folder> --out <folder> [--size 1024]
"""

from stylefuse.align.ffhq import FFHQ_RESOLUTION, FaceQuad, align_face, warp_face
from stylefuse.align.files import align_file
from stylefuse.align.landmarks import LandmarkDetector

__all__ = ["FFHQ_RESOLUTION", "FaceQuad", "LandmarkDetector", "align_face", "align_file", "warp_face"]
