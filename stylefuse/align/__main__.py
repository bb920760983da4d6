"""Photos -> FFHQ-aligned face PNGs, ready for project.py and fuse.py.

    python -m stylefuse.align PHOTO --out FOLDER [--size 1024]

PHOTO is an image file or a folder of them; each result is FOLDER/<photo name>.png. In a folder, a photo without a
face is reported and skipped, and the command exits with status 2 once the others are done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from stylefuse.align.ffhq import FFHQ_RESOLUTION
from stylefuse.align.files import align_file, save_png
from stylefuse.align.landmarks import default_detector
from stylefuse.cli import user_errors
from stylefuse.errors import AlignmentError
from stylefuse.projection.io import list_targets


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stylefuse.align", description=__doc__.split("\n")[0])
    parser.add_argument("photo", metavar="PHOTO", help="an image file or a folder of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the aligned PNGs (<photo name>.png)")
    parser.add_argument("--size", type=int, default=FFHQ_RESOLUTION, help="output width and height in pixels")
    return parser.parse_args(argv)


@user_errors
def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    photos = list_targets(args.photo, argument="PHOTO")
    detector = default_detector()  # a missing extra fails here, before any photo
    failures = []
    for photo in tqdm(photos, desc="aligning", unit="photo", disable=len(photos) == 1):
        try:
            aligned = align_file(photo, args.size, detector)
        except AlignmentError as err:
            if len(photos) == 1:
                raise
            tqdm.write(f"skipped {err}", file=sys.stderr)
            failures.append(photo)
            continue
        save_png(aligned, args.out / f"{photo.stem}.png")
    if failures:
        raise AlignmentError(f"{len(failures)} of {len(photos)} photos not aligned (listed above); the others are in "
                             f"{args.out}")
    print(f"aligned {len(photos)} photo(s) -> {args.out}")


if __name__ == "__main__":
    main()
