"""Target files of the projection job: listing images and one-line errors for unusable paths and files."""

from __future__ import annotations

import pytest

from stylefuse.errors import StylefuseError
from stylefuse.projection.io import list_targets, load_target


def test_target_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cases = [(tmp_path / "missing.png", "target not found"), (tmp_path / "empty", "no images in folder"),
             (tmp_path / "notes.txt", "is not an image file")]
    for path, message in cases:
        with pytest.raises(StylefuseError, match=message) as err:
            list_targets(path)
        assert "\n" not in str(err.value)
    with pytest.raises(StylefuseError, match="cannot read image") as err:
        load_target(list_targets(tmp_path / "broken.png")[0], 32, 3)
    assert "\n" not in str(err.value)
