"""Dataset tool: converts images into a training dataset in the official layout.

    python -m stylefuse.data.tool --source <folder | .zip | LMDB folder | toy> --dest <out.zip | empty folder>
        [--resolution N] [--transform center-crop | center-crop-wide] [--resize-filter box | lanczos]
        [--max-images N] [--height H] [--channels rgb | l]

Output: `{idx // 1000:05d}/img{idx:08d}.png` (uncompressed PNG, L or RGB) plus `dataset.json` with the source's
labels carried over (`{"labels": [[name, label], ...]}`, null unless every image has one). Damaged source images
(and decompression bombs) are skipped with a warning naming them. All images must come out alike: a source mixing
greyscale and colour images needs `--channels rgb` (or `l`). `--source toy` exports the embedded toy faces (labels:
head shape).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import PIL.Image
from tqdm import tqdm

from stylefuse.cli import user_errors
from stylefuse.data.datasets import DECODE_ERRORS, ImageFiles, LmdbImages, read_labels
from stylefuse.data.toy import ToyDataset
from stylefuse.errors import DATASET_TOOL, ConfigError, CorruptImageWarning, DatasetError, DatasetNotFoundError
from stylefuse.utils.images import RESIZE_FILTERS, center_crop_resize, suggested_resolution, training_size_problem
from stylefuse.utils.shapes import is_power_of_two

TRANSFORMS = ("center-crop", "center-crop-wide")
CHANNELS = {"rgb": "RGB", "l": "L"}  # --channels -> the PIL mode every output image is converted to

# One source image: (name for messages, reader returning a PIL image, label or None).
SourceItem = tuple[str, Callable[[], PIL.Image.Image], Any]

# ----------------------------------------------------------------------------
# Sources.


def open_source(source: str, resolution: int | None, max_images: int | None) -> tuple[int, Iterator[SourceItem]]:
    """The number of source images (the first max_images) and an iterator over them, in output order."""
    if source == "toy":
        toy = ToyDataset(resolution=resolution or 32, num_images=max_images or 4096, use_labels=True)
        return len(toy), ((f"toy image {i}", _toy_reader(toy, i), int(toy.get_label(i).argmax()))
                          for i in range(len(toy)))
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, "data.mdb")):
        db = LmdbImages(source, max_images)
        return len(db), ((db.describe(i), _bytes_reader(db.read, i), None) for i in range(len(db)))
    files = ImageFiles(source)
    labels = read_labels(files) or {}
    names = files.image_names[:max_images]
    return len(names), ((files.describe(n), _bytes_reader(files.read, n), labels.get(n)) for n in names)


def _bytes_reader(read: Callable[[Any], bytes], key: Any) -> Callable[[], PIL.Image.Image]:
    def load() -> PIL.Image.Image:
        image = PIL.Image.open(io.BytesIO(read(key)))
        # L and RGB are kept; 1-bit and gray+alpha become L; palette, alpha, CMYK, ... become RGB (alpha dropped).
        mode = image.mode if image.mode in ("L", "RGB") else "L" if image.mode in ("1", "LA") else "RGB"
        return image.convert(mode)

    return load


def _toy_reader(toy: ToyDataset, i: int) -> Callable[[], PIL.Image.Image]:
    return lambda: PIL.Image.fromarray(toy[i][0].transpose(1, 2, 0), "RGB")


# ----------------------------------------------------------------------------
# Transforms.


def make_transform(transform: str | None, resolution: int | None, height: int | None,
                   resize_filter: str) -> Callable[[PIL.Image.Image], PIL.Image.Image | None]:
    """Image -> output image, or None to skip it (too small for center-crop-wide), as the official tool."""
    resample = RESIZE_FILTERS[resize_filter]
    if transform is not None and resolution is None:
        raise ConfigError(f"--transform {transform} needs --resolution N (the output size)")
    if height is not None and transform != "center-crop-wide":
        raise ConfigError("--height only applies to --transform center-crop-wide")

    def scale(image: PIL.Image.Image) -> PIL.Image.Image:
        if resolution is None or image.size == (resolution, resolution):
            return image
        return image.resize((resolution, resolution), resample)

    def center_crop_wide(image: PIL.Image.Image) -> PIL.Image.Image | None:
        # Crop a centred band of the output aspect, resize it to resolution x band, paste it centred on black.
        assert resolution is not None
        band = height if height is not None else resolution * 3 // 4
        w, h = image.size
        crop_h = int(np.round(resolution * h / w))
        if w < resolution or crop_h < band:
            return None
        top = (h - crop_h) // 2
        image = image.crop((0, top, w, top + crop_h)).resize((resolution, band), resample)
        canvas = PIL.Image.new(image.mode, (resolution, resolution))
        canvas.paste(image, (0, (resolution - band) // 2))
        return canvas

    if transform is None:
        return scale
    if transform == "center-crop":
        return lambda image: center_crop_resize(image, resolution, resize_filter)
    if transform == "center-crop-wide":
        return center_crop_wide
    raise ConfigError(f"--transform {transform!r} is unknown; use one of {', '.join(TRANSFORMS)}")


# ----------------------------------------------------------------------------
# Destinations.


class DatasetWriter:
    """Writes files into a new uncompressed zip, or into an empty (or new) folder. The zip is written under a
    temporary name beside it and renamed when complete: a failed run leaves no half-written zip, and a zip already
    at `dest` stays as it was until the new one is done. Any write that fails is one line naming `--dest`."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.is_zip = dest.lower().endswith(".zip")
        self._zip: zipfile.ZipFile | None = None
        if not self.is_zip and os.path.exists(dest) and not (os.path.isdir(dest) and not os.listdir(dest)):
            raise ConfigError(f"--dest {dest} exists and is not an empty folder; choose a new folder or a .zip")
        with self._one_line_errors():
            if self.is_zip:
                os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
                self._zip = zipfile.ZipFile(self._partial, "w", compression=zipfile.ZIP_STORED)
            else:
                os.makedirs(dest, exist_ok=True)

    @property
    def _partial(self) -> str:
        return f"{self.dest}.partial"

    @contextmanager
    def _one_line_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            reason = "a file is in the way" if isinstance(err, (FileExistsError, NotADirectoryError)) else \
                err.strerror or str(err)
            where = f": {err.filename}" if err.filename not in (None, self.dest, self._partial) else ""
            raise ConfigError(f"cannot write --dest {self.dest} ({reason}{where}); choose a path in a folder you can "
                              f"write to") from None

    def write(self, name: str, data: bytes) -> None:
        with self._one_line_errors():
            if self._zip is not None:
                self._zip.writestr(name, data)
            else:
                path = os.path.join(self.dest, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)

    def close(self) -> None:
        if self._zip is not None:
            with self._one_line_errors():
                self._zip.close()
                self._zip = None
                os.replace(self._partial, self.dest)

    def discard(self) -> None:
        """Removes a half-written output (the folder was empty or absent before)."""
        if self.is_zip:
            if self._zip is not None:
                with suppress(OSError):
                    self._zip.close()
            with suppress(FileNotFoundError):
                os.remove(self._partial)
        else:
            shutil.rmtree(self.dest, ignore_errors=True)


# ----------------------------------------------------------------------------


def convert_dataset(
    source:        str,                # Image folder, .zip, LMDB folder (holding data.mdb), or 'toy'.
    dest:          str,                # Output .zip, or an empty / new folder.
    resolution:    int | None = None,  # Output size N x N; None = keep the source size.
    transform:     str | None = None,  # None (plain resize), 'center-crop' or 'center-crop-wide'.
    resize_filter: str = "lanczos",    # 'lanczos' (official default) or 'box' (FFHQ 256 as in the paper).
    max_images:    int | None = None,  # Read only the first this-many source images (official --max-images).
    height:        int | None = None,  # center-crop-wide: height of the image band, default 3/4 of resolution.
    channels:      str | None = None,  # 'rgb' or 'l': convert every image to colour / greyscale; None = keep.
) -> int:
    """Converts `source` into a training dataset at `dest`; returns the number of images written."""
    if resize_filter not in RESIZE_FILTERS:
        raise ConfigError(f"--resize-filter {resize_filter!r} is unknown; use one of {sorted(RESIZE_FILTERS)}")
    if resolution is not None and not is_power_of_two(resolution):
        raise ConfigError(f"--resolution {resolution} is not a power of two; use e.g. "
                          f"{suggested_resolution(resolution)}")
    if channels is not None and channels not in CHANNELS:
        raise ConfigError(f"--channels {channels!r} is unknown; use one of {', '.join(CHANNELS)}")
    transform_image = make_transform(transform, resolution, height, resize_filter)
    if source != "toy" and not os.path.exists(source):
        raise DatasetNotFoundError(source, "check --source (a folder, .zip, LMDB folder, or 'toy')")
    count, items = open_source(source, resolution, max_images)
    if count == 0:
        raise DatasetError(f"no images found in {source}; point --source to a folder, .zip or LMDB of images")

    writer = DatasetWriter(dest)
    try:
        rows, skipped = _write_images(items, count, transform_image, CHANNELS.get(channels), writer)
        if not rows:
            raise DatasetError(f"no image of {source} could be converted (all skipped); check the source")
        # Labels only if every image has one, as the official tool writes them.
        metadata = {"labels": rows if all(label is not None for _, label in rows) else None}
        writer.write("dataset.json", json.dumps(metadata).encode())
        writer.close()
    except BaseException:
        writer.discard()
        raise
    print(f"wrote {len(rows)} images to {dest}" + (f", skipped {skipped}" if skipped else ""))
    return len(rows)


def _write_images(items: Iterator[SourceItem], count: int, transform_image: Callable, mode: str | None,
                  writer: DatasetWriter) -> tuple[list[list[Any]], int]:
    """Writes transformed images (converted to PIL `mode` unless None) as consecutive PNGs; returns the [name, label]
    rows and the skip count."""
    rows: list[list[Any]] = []
    skipped = 0
    first: tuple[str, int, int, str] | None = None  # (source name, width, height, mode) of the first output.
    for name, load, label in tqdm(items, total=count, unit="img"):
        try:
            image = transform_image(load())
        except DECODE_ERRORS as err:
            warnings.warn(f"skipping unreadable image {name} ({err})", CorruptImageWarning, stacklevel=2)
            skipped += 1
            continue
        if image is None:  # Too small for center-crop-wide, as in the official tool.
            skipped += 1
            continue
        if mode is not None and image.mode != mode:
            image = image.convert(mode)
        if first is None:
            first = (name, *image.size, image.mode)
            _check_output(name, *image.size)
        elif (*image.size, image.mode) != first[1:]:
            raise DatasetError(_mismatch(name, image, first))
        idx = len(rows)
        archive_name = f"{idx // 1000:05d}/img{idx:08d}.png"
        png = io.BytesIO()
        image.save(png, format="png", compress_level=0, optimize=False)
        writer.write(archive_name, png.getvalue())
        rows.append([archive_name, label])
    return rows, skipped


def _mismatch(name: str, image: PIL.Image.Image, first: tuple[str, int, int, str]) -> str:
    """What differs between an output image and the first one, and the flags that make them alike."""
    first_name, w, h, mode = first
    fixes = []
    if image.size != (w, h):
        fixes.append(f"--resolution {w} to give all images one size")
    if image.mode != mode:
        fixes.append("--channels rgb to make all images colour (or --channels l: greyscale)")
    return (f"{name} becomes {image.size[0]}x{image.size[1]} {image.mode} but {first_name} became {w}x{h} {mode}; "
            f"add {' and '.join(fixes)}")


def _check_output(name: str, w: int, h: int) -> None:
    size_problem = training_size_problem(w, h)
    if size_problem is not None:
        problem, fix, _ = size_problem
        raise DatasetError(f"output image from {name} is {w}x{h}, {problem}; StyleGAN2 needs square power-of-two "
                           f"images: rerun {DATASET_TOOL} with {fix}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=DATASET_TOOL, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--source", required=True, help="image folder, .zip, LMDB folder (data.mdb), or 'toy'")
    parser.add_argument("--dest", required=True, help="output .zip, or an empty or new folder")
    parser.add_argument("--resolution", type=int, help="output size N x N (power of two); default: keep")
    parser.add_argument("--transform", choices=TRANSFORMS, help="crop before resizing (needs --resolution)")
    parser.add_argument("--resize-filter", choices=sorted(RESIZE_FILTERS), default="lanczos",
                        help="resampling filter (default lanczos; the paper's FFHQ 256 used box)")
    parser.add_argument("--max-images", type=int, help="read only the first N source images")
    parser.add_argument("--height", type=int, help="center-crop-wide: image band height (default 3/4 of N)")
    parser.add_argument("--channels", choices=sorted(CHANNELS), help="convert every image to colour (rgb) or "
                        "greyscale (l); default: keep (the images must then agree)")
    return parser.parse_args(argv)


@user_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning  # Restored on exit.
        convert_dataset(args.source, args.dest, resolution=args.resolution, transform=args.transform,
                        resize_filter=args.resize_filter, max_images=args.max_images, height=args.height,
                        channels=args.channels)


def _print_warning(message: Warning | str, *_args: Any, **_kwargs: Any) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    main()
