"""Photo files: EXIF orientation honoured, projection targets aligned into their result folders."""

from __future__ import annotations

import numpy as np
import PIL.Image

from stylefuse.align import align_face, align_file
from stylefuse.align.files import align_targets


def test_file_stored_sideways_is_turned_upright_first(detector, astronaut, tmp_path):
    # A phone photo stored turned by 90 degrees with EXIF orientation 6 ("turn clockwise to view") is aligned as
    # the upright photo; without honouring the tag there would be no upright face to find.
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # Orientation
    astronaut.transpose(PIL.Image.Transpose.ROTATE_90).save(tmp_path / "sideways.png", exif=exif)
    aligned = align_file(tmp_path / "sideways.png", 64, detector=detector)
    np.testing.assert_array_equal(np.asarray(aligned), np.asarray(align_face(astronaut, 64, detector=detector)))


def test_targets_are_aligned_at_ffhq_size_into_their_folders(detector, astronaut, tmp_path):
    astronaut.save(tmp_path / "astronaut.png")
    aligned = align_targets([tmp_path / "astronaut.png"], [tmp_path / "run" / "astronaut"], resolution=256)
    assert aligned == [tmp_path / "run" / "astronaut" / "aligned.png"]
    assert sorted(p.name for p in aligned[0].parent.iterdir()) == ["aligned.png"]  # no temporary file left
    image = PIL.Image.open(aligned[0])
    assert image.size == (1024, 1024) and image.mode == "RGB"  # the FFHQ images the smaller datasets come from
    np.testing.assert_array_equal(np.asarray(image), np.asarray(align_face(astronaut, 1024, detector=detector)))
