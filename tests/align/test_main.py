"""python -m stylefuse.align: a folder of photos in, one aligned PNG per face out, one-line errors, no partial file."""

from __future__ import annotations

import numpy as np
import PIL.Image
from skimage import data

from stylefuse.align import align_face
from stylefuse.align.__main__ import main


def run_main(capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit status and stderr lines of the command."""
    try:
        main(list(argv))
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_folder_is_aligned_and_faceless_photos_reported(detector, astronaut, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.convert("L").save(photos / "astronaut.jpg", quality=95)  # grayscale JPEG: aligned as RGB
    PIL.Image.fromarray(data.coffee()).save(photos / "coffee.png")
    out = tmp_path / "out"
    status, errors = run_main(capsys, str(photos), "--out", str(out), "--size", "64")
    assert status == 2
    assert [line for line in errors if line.startswith(("skipped", "error"))] == [
        f"skipped {photos / 'coffee.png'}: no face found in the photo (it needs an upright, frontal face with both "
        f"eyes and the mouth visible; crop closer to a small face)",
        f"error: 1 of 2 photos not aligned (listed above); the others are in {out}"]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png"]  # no temporary file left
    aligned = PIL.Image.open(out / "astronaut.png")
    expected = align_face(PIL.Image.open(photos / "astronaut.jpg"), 64, detector=detector)
    assert aligned.mode == "RGB" and aligned.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(aligned), np.asarray(expected))


def test_single_photo_errors_are_one_line(detector, tmp_path, capsys):
    coffee = tmp_path / "coffee.png"
    PIL.Image.fromarray(data.coffee()).save(coffee)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    cases = [(coffee, f"error: {coffee}: no face found in the photo"),
             (tmp_path / "broken.jpg", f"error: cannot read image {tmp_path / 'broken.jpg'}"),
             (tmp_path / "nope.png", f"error: PHOTO not found: {tmp_path / 'nope.png'} (PHOTO must be an image file")]
    for photo, message in cases:
        status, errors = run_main(capsys, str(photo), "--out", str(tmp_path / "out"))
        assert status == 2 and len(errors) == 1 and errors[0].startswith(message), errors
    assert not (tmp_path / "out").exists()


def test_decompression_bomb_is_refused_in_one_line(detector, tmp_path, capsys, monkeypatch):
    PIL.Image.new("RGB", (300, 300)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 300 * 300 // 4)  # 4x over the limit: PIL refuses it
    status, errors = run_main(capsys, str(tmp_path / "bomb.png"), "--out", str(tmp_path / "out"))
    assert status == 2 and len(errors) == 1
    assert errors[0].startswith(f"error: cannot read image {tmp_path / 'bomb.png'}: Image size (90000 pixels) "
                                f"exceeds limit") and errors[0].endswith("(downscale it first)")


def test_failed_save_leaves_no_file(detector, astronaut, tmp_path, capsys, monkeypatch):
    astronaut.save(tmp_path / "astronaut.png")
    out = tmp_path / "out"

    def save_half_then_fail(image, fp, *args, **kwargs):
        with open(fp, "wb") as file:
            file.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", save_half_then_fail)
    status, errors = run_main(capsys, str(tmp_path / "astronaut.png"), "--out", str(out), "--size", "64")
    assert status == 2 and errors == [f"error: cannot write {out / 'astronaut.png'} (No space left on device); check "
                                      f"the free space and the permissions of {out} -- the previous version of the "
                                      f"file, if any, is kept"]
    assert list(out.iterdir()) == []
