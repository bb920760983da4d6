"""Training images with the official dataset semantics, read from image folders, zip archives or LSUN LMDBs.

Every dataset yields `(image, label)`: image uint8 numpy [C, H, W], label float32 numpy [label_dim].
The base class implements the official `max_size` subset, `xflip` doubling and label handling; subclasses only
say how to read raw image `i`. A damaged file met during training is skipped with a warning, never a crash.
"""

from __future__ import annotations

import importlib
import io
import itertools
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import PIL.Image
import torch
from tqdm import tqdm

from stylefuse.errors import DATASET_TOOL, ConfigError, CorruptImageWarning, DatasetError, DatasetNotFoundError
from stylefuse.utils.images import (
    RESIZE_FILTERS,
    center_crop_resize,
    is_image_file,
    suggested_resolution,
    training_size_problem,
)
from stylefuse.utils.shapes import is_power_of_two

# What PIL, zlib and zipfile raise for one damaged or truncated file.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error, zipfile.BadZipFile,
                 PIL.Image.DecompressionBombError)

# PIL modes the networks can take as they are, and their channel counts.
CHANNELS = {"L": 1, "RGB": 3}

# ----------------------------------------------------------------------------
# Image helpers shared with the dataset tool.


def image_to_chw(image: PIL.Image.Image) -> np.ndarray:
    """Decodes a PIL image in mode L or RGB to uint8 [C, H, W]."""
    image.load()  # Raise decoding errors here, not inside numpy's array conversion.
    arr = np.asarray(image)
    return (arr[:, :, None] if arr.ndim == 2 else arr).transpose(2, 0, 1)


def suggest_dest(path: str, resolution: int) -> str:
    """Where the tool could write a converted copy of `path`."""
    return f"{os.path.splitext(os.path.normpath(path))[0]}-{resolution}.zip"


# ----------------------------------------------------------------------------


class ImageFiles:
    """The files of an image folder (searched recursively) or a zip archive, by relative '/'-separated name.

    The zip is opened lazily by the process that reads it (each DataLoader worker) and is never pickled or shared
    across a fork: a shared file offset would let workers read each other's bytes.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if os.path.isdir(path):
            self.is_zip = False
            names = [os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/")
                     for root, _dirs, files in os.walk(path) for f in files]
        elif os.path.isfile(path) and path.lower().endswith(".zip"):
            self.is_zip = True
            try:
                names = [n for n in self._zipfile().namelist() if not n.endswith("/")]
            except zipfile.BadZipFile as err:
                raise DatasetError(f"{path} is not a readable zip archive ({err}); rebuild it with "
                                   f"{DATASET_TOOL}") from err
        elif not os.path.exists(path):
            raise DatasetNotFoundError(path)
        else:
            raise DatasetError(f"{path} is neither a folder nor a .zip archive; point dataset.path to one "
                               f"({DATASET_TOOL} builds a zip)")
        self.names = set(names)
        self.image_names = sorted(n for n in names if is_image_file(n))

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def open(self, name: str) -> IO[bytes]:
        return self._zipfile().open(name) if self.is_zip else open(os.path.join(self.path, name), "rb")

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def describe(self, name: str) -> str:
        return f"{self.path}/{name}"

    def close(self) -> None:
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = self._zip_pid = None

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _zip=None, _zip_pid=None)


def read_labels(files: ImageFiles) -> dict[str, Any] | None:
    """The `dataset.json` labels, `{relative image name: label}`, or None when absent or null."""
    if "dataset.json" not in files.names:
        return None
    try:
        labels = json.loads(files.read("dataset.json"))["labels"]
        return None if labels is None else {str(name).replace("\\", "/"): value for name, value in labels}
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read {files.describe('dataset.json')} ({err!r}); it must hold "
                           '{"labels": [["00000/img00000000.png", 6], ...]} or {"labels": null}') from err


# Open read-only LMDB environments of this process, by real path. py-lmdb refuses to open one environment twice in a
# process (a second dataset on the same LMDB shares it), and LMDB must not be used across a fork: every environment
# is closed just before a fork (DataLoader workers) and reopened on demand on both sides.
_LMDB_ENVS: dict[str, Any] = {}


def _lmdb_env(path: str) -> Any:
    import lmdb

    key = os.path.realpath(path)
    if key not in _LMDB_ENVS:
        try:
            _LMDB_ENVS[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, max_readers=256)
        except lmdb.Error as err:
            raise DatasetError(f"cannot open the LMDB {path} ({err}); check the download") from err
    return _LMDB_ENVS[key]


def _close_lmdb_envs() -> None:
    while _LMDB_ENVS:
        _LMDB_ENVS.popitem()[1].close()


os.register_at_fork(before=_close_lmdb_envs)


class LmdbImages:
    """The encoded images of an LMDB (LSUN layout: any key -> JPEG/WebP bytes), the first `max_images` keys.

    Keys are kept in one bytes blob + offsets: compact, cheap to pickle, copy-on-write friendly in forked workers.
    """

    def __init__(self, path: str, max_images: int | None = None) -> None:
        if not os.path.exists(path):
            raise DatasetNotFoundError(path)
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            raise DatasetError(f"{path} is not an LMDB folder (no data.mdb inside); point dataset.path to an "
                               "LSUN <category>_lmdb folder")
        self.path = path
        with _lmdb_env(path).begin() as txn:
            count = txn.stat()["entries"] if max_images is None else min(max_images, txn.stat()["entries"])
            keys = list(itertools.islice(txn.cursor().iternext(keys=True, values=False), count))
        self._keys = b"".join(keys)
        self._offsets = np.cumsum([0, *map(len, keys)], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def key(self, i: int) -> bytes:
        return self._keys[self._offsets[i]:self._offsets[i + 1]]

    def read(self, i: int) -> bytes:
        with _lmdb_env(self.path).begin() as txn:
            value = txn.get(self.key(i))
        if value is None:
            raise OSError("key vanished from the LMDB")
        return value

    def describe(self, i: int) -> str:
        return f"{self.path} key {self.key(i).decode(errors='replace')}"


# ----------------------------------------------------------------------------


class Dataset(torch.utils.data.Dataset):
    """Base class: official `max_size`, `xflip` and label semantics over `raw_shape[0]` raw images."""

    _own_kwargs: dict[str, Any]  # Set by each subclass: its own constructor arguments, for training_set_kwargs.

    def __init__(self,
        name:        str,               # Short name of the dataset.
        raw_shape:   list[int],         # Shape of all raw images, [N, C, H, W].
        max_size:    int | None = None, # Keep a random subset of this many raw images (sorted), None = all.
        use_labels:  bool = False,      # Conditioning labels; False = label_dim 0.
        xflip:       bool = False,      # Append an x-flipped copy of every image (after max_size).
        random_seed: int = 0,           # Seed of the max_size subset.
    ) -> None:
        self._name = name
        self._raw_shape = list(raw_shape)
        self._base_kwargs = dict(use_labels=use_labels, max_size=max_size, xflip=xflip, random_seed=random_seed)
        self._bad: set[int] = set()  # Raw indices found unreadable in this process.

        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

        self._raw_labels = self._check_labels(self._load_raw_labels()) if use_labels else None
        if self._raw_labels is None:
            self._raw_labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
        self._label_shape = ([int(self._raw_labels.max()) + 1] if self._raw_labels.dtype == np.int64
                             else list(self._raw_labels.shape[1:]))

    # Subclass interface.
    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        """uint8 [C, H, W] of raw image `raw_idx`; raises one of DECODE_ERRORS if the file is damaged."""
        raise NotImplementedError

    def _load_raw_labels(self) -> np.ndarray:
        """int64 [N] class indices or float32 [N, label_dim]; raises DatasetError when there are none."""
        raise NotImplementedError

    def _describe(self, raw_idx: int) -> str:
        """Names raw image `raw_idx` (its file) in warnings."""
        raise NotImplementedError

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        n = self._raw_shape[0]
        if labels.shape[0] != n or (labels.dtype == np.int64 and (labels.ndim != 1 or labels.min() < 0)) or (
                labels.dtype == np.float32 and labels.ndim != 2):
            raise DatasetError(f"labels of {self.name} must be {n} class indices >= 0 or {n} float vectors, "
                               f"got shape {list(labels.shape)} {labels.dtype}; fix the labels in dataset.json")
        return labels

    # Items.
    def __len__(self) -> int:
        return self._raw_idx.size

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        # A damaged file must not end a days-long run: the next readable item stands in for it.
        for i in itertools.chain(range(idx, len(self)), range(idx)):
            image = self._read_image(int(self._raw_idx[i]))
            if image is not None:
                if self._xflip[i]:
                    image = image[:, :, ::-1]
                return image.copy(), self.get_label(i)
        raise DatasetError(f"no image of {self.name} can be read (all were skipped as damaged); check the files")

    def _read_image(self, raw_idx: int) -> np.ndarray | None:
        if raw_idx in self._bad:
            return None
        try:
            image = self._load_raw_image(raw_idx)
            if list(image.shape) != self.image_shape or image.dtype != np.uint8:
                raise ValueError(f"it is {image.dtype} {list(image.shape)}, the dataset is uint8 {self.image_shape}")
        except DECODE_ERRORS as err:
            self._skip(raw_idx, err)
            return None
        return image

    def _skip(self, raw_idx: int, err: BaseException) -> None:
        """Marks raw image `raw_idx` unreadable, warning once per file (per process)."""
        if raw_idx not in self._bad:
            self._bad.add(raw_idx)
            warnings.warn(f"skipping unreadable image {self._describe(raw_idx)} ({err}); another image takes its "
                          "place - re-encode or delete the file", CorruptImageWarning, stacklevel=3)

    def get_label(self, idx: int) -> np.ndarray:
        """float32 [label_dim] label of item `idx` (one-hot for class labels)."""
        label = self._raw_labels[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    # Properties, as in the official Dataset.
    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> list[int]:
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        assert self.image_shape[1] == self.image_shape[2]
        return self.image_shape[1]

    @property
    def label_shape(self) -> list[int]:
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        assert len(self._label_shape) == 1
        return self._label_shape[0]

    @property
    def has_labels(self) -> bool:
        return any(x != 0 for x in self._label_shape)

    @property
    def training_set_kwargs(self) -> dict[str, Any]:
        """Plain dict that rebuilds this dataset with `build_dataset` (stored in checkpoints)."""
        cls = type(self)
        return {"class_name": f"{cls.__module__}.{cls.__name__}", **self._own_kwargs, **self._base_kwargs}


# ----------------------------------------------------------------------------


class ImageFolderDataset(Dataset):
    """A folder (recursive) or zip of same-size square images, sorted by relative path; labels from dataset.json."""

    def __init__(self,
        path:        str,               # Folder or .zip (layout of the dataset tool, or any images).
        resolution:  int | None = None, # Expected resolution, None = whatever the images have.
        use_labels:  bool = False,      # Read class labels from dataset.json.
        max_size:    int | None = None, # Random subset (applied before xflip).
        xflip:       bool = False,      # Double the dataset with mirrored copies.
        random_seed: int = 0,           # Seed of the max_size subset.
    ) -> None:
        self._path = str(path)
        self._files = ImageFiles(self._path)
        self._image_names = self._files.image_names
        if not self._image_names:
            raise DatasetError(f"no images found in {self._path} (looked for .png/.jpg/.webp/... files, "
                               "recursively); point dataset.path to a folder or zip of images")
        shape, unreadable = self._index()
        self._files.close()  # Reopened lazily by whichever process reads.
        if resolution is not None and shape[1] != resolution:
            raise DatasetError(f"images in {self._path} are {shape[2]}x{shape[1]} but dataset.resolution is "
                               f"{resolution}; set dataset.resolution={shape[1]} (or null), or convert them with "
                               f"{DATASET_TOOL} --source {self._path} --dest {suggest_dest(self._path, resolution)} "
                               f"--resolution {resolution}")
        self._own_kwargs = dict(path=self._path, resolution=shape[1])
        super().__init__(name=os.path.splitext(os.path.basename(os.path.normpath(self._path)))[0],
                         raw_shape=[len(self._image_names), *shape], use_labels=use_labels, max_size=max_size,
                         xflip=xflip, random_seed=random_seed)
        for raw_idx, err in unreadable:
            self._skip(raw_idx, err)

    def _index(self) -> tuple[list[int], list[tuple[int, BaseException]]]:
        """Reads every image header (cheap) and decodes the first image; checks one square power-of-two shape."""
        shape: list[int] | None = None
        first_name = ""
        unreadable: list[tuple[int, BaseException]] = []
        names = self._image_names
        for raw_idx, name in enumerate(tqdm(names, desc=f"indexing {self._path}", unit="img", leave=False,
                                            disable=len(names) < 5000)):
            try:
                with self._files.open(name) as f:
                    image = PIL.Image.open(f)
                    mode, (w, h) = image.mode, image.size
                    if shape is None and mode in CHANNELS:
                        image_to_chw(image)  # Decode the first image in full.
            except DECODE_ERRORS as err:
                unreadable.append((raw_idx, err))
                continue
            if mode not in CHANNELS:
                raise DatasetError(f"{self._files.describe(name)} is a {mode} image; StyleGAN2 takes 1-channel (L) "
                                   f"or 3-channel (RGB) images - convert the dataset with {DATASET_TOOL} --source "
                                   f"{self._path} --dest {suggest_dest(self._path, suggested_resolution(min(w, h)))}")
            cur = [CHANNELS[mode], h, w]
            if shape is None:
                shape, first_name = cur, name
                self._check_square(name, w, h)
            elif cur != shape:
                # The tool's flags for what differs: the size, the channels (greyscale and colour), or both.
                fix = (f" --resolution {shape[1]}" if cur[1:] != shape[1:] else "") + \
                      (" --channels rgb" if cur[0] != shape[0] else "")
                raise DatasetError(f"images in {self._path} differ in shape: {first_name} is {shape} but {name} is "
                                   f"{cur} ([C, H, W]); convert them to one shape with {DATASET_TOOL} --source "
                                   f"{self._path} --dest {suggest_dest(self._path, shape[1])}{fix}")
        if shape is None:
            raise DatasetError(f"none of the {len(names)} images in {self._path} can be read; check the files")
        return shape, unreadable

    def _check_square(self, name: str, w: int, h: int) -> None:
        size_problem = training_size_problem(w, h)
        if size_problem is None:
            return
        problem, fix, res = size_problem
        raise DatasetError(f"images in {self._path} are {w}x{h} ({name}), {problem}; StyleGAN2 needs square "
                           f"power-of-two images: convert them with {DATASET_TOOL} --source {self._path} "
                           f"--dest {suggest_dest(self._path, res)} {fix}")

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        with self._files.open(self._image_names[raw_idx]) as f:
            return image_to_chw(PIL.Image.open(f))

    def _load_raw_labels(self) -> np.ndarray:
        labels = read_labels(self._files)
        if labels is None:
            raise DatasetError(f"use_labels is on but {self._path} has no labels (no dataset.json, or its labels "
                               'are null); set dataset.use_labels=false, or add a dataset.json with '
                               '{"labels": [["<image file>", <class>], ...]}')
        missing = [n for n in self._image_names if n not in labels]
        if missing:
            raise DatasetError(f"{self._files.describe('dataset.json')} has no label for {missing[0]} "
                               f"({len(missing)} images unlabelled); label every image or set dataset.use_labels=false")
        try:
            values = np.array([labels[n] for n in self._image_names], dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise DatasetError(f"labels in {self._files.describe('dataset.json')} must be class indices or "
                               f"equal-length number lists ({err}); fix dataset.json") from err
        if values.ndim == 1 and np.all(values == np.round(values)):
            return values.astype(np.int64)
        return values.astype(np.float32)

    def _describe(self, raw_idx: int) -> str:
        return self._files.describe(self._image_names[raw_idx])


# ----------------------------------------------------------------------------


class LmdbDataset(Dataset):
    """An LSUN LMDB read directly: each image centre-cropped to a square and resized on the fly, as the tool does."""

    def __init__(self,
        path:          str,               # LMDB folder (holding data.mdb), e.g. LSUN's cat_lmdb.
        resolution:    int,               # Output resolution, a power of two.
        resize_filter: str = "lanczos",   # 'lanczos' (the tool's default) or 'box'.
        max_images:    int | None = None, # Use the first this-many keys, like the tool's --max-images.
        use_labels:    bool = False,      # LMDBs carry no labels: must stay False.
        max_size:      int | None = None, # Random subset (applied before xflip).
        xflip:         bool = False,      # Double the dataset with mirrored copies.
        random_seed:   int = 0,           # Seed of the max_size subset.
    ) -> None:
        self._path = str(path)
        if not is_power_of_two(resolution) or resolution < 4:
            raise DatasetError(f"dataset.resolution={resolution} is not a power of two; use e.g. 256")
        if resize_filter not in RESIZE_FILTERS:
            raise ConfigError(f"resize_filter={resize_filter!r} is unknown; use one of {sorted(RESIZE_FILTERS)}")
        self._resolution = resolution
        self._resize_filter = resize_filter
        self._db = LmdbImages(self._path, max_images)
        if len(self._db) == 0:
            raise DatasetError(f"the LMDB {self._path} holds no images; check the download")
        self._own_kwargs = dict(path=self._path, resolution=resolution, resize_filter=resize_filter,
                                max_images=max_images)
        super().__init__(name=os.path.basename(os.path.normpath(self._path)),
                         raw_shape=[len(self._db), 3, resolution, resolution], use_labels=use_labels,
                         max_size=max_size, xflip=xflip, random_seed=random_seed)
        if all(self._read_image(i) is None for i in range(min(len(self._db), 10))):
            raise DatasetError(f"the first images of the LMDB {self._path} cannot be decoded; check the download")

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        with PIL.Image.open(io.BytesIO(self._db.read(raw_idx))) as image:
            image = image.convert("RGB")
        return image_to_chw(center_crop_resize(image, self._resolution, self._resize_filter))

    def _load_raw_labels(self) -> np.ndarray:
        raise DatasetError(f"LSUN LMDBs carry no labels ({self._path}); set dataset.use_labels=false")

    def _describe(self, raw_idx: int) -> str:
        return self._db.describe(raw_idx)


# ----------------------------------------------------------------------------

# Dataset classes `build_dataset` may construct; checkpoint text never names an arbitrary class.
DATASET_CLASSES = {
    "stylefuse.data.datasets.ImageFolderDataset": "stylefuse.data.datasets.ImageFolderDataset",
    "stylefuse.data.datasets.LmdbDataset": "stylefuse.data.datasets.LmdbDataset",
    "stylefuse.data.toy.ToyDataset": "stylefuse.data.toy.ToyDataset",
    "training.dataset.ImageFolderDataset": "stylefuse.data.datasets.ImageFolderDataset",  # Official pickles.
}


def build_dataset(training_set_kwargs: Mapping[str, Any]) -> Dataset:
    """Rebuilds a dataset from `training_set_kwargs` (ours, or the official pickles' ImageFolderDataset ones)."""
    kwargs = dict(training_set_kwargs)
    class_name = kwargs.pop("class_name", None)
    if class_name not in DATASET_CLASSES:
        raise ConfigError(f"unknown dataset class {class_name!r}; use one of {sorted(DATASET_CLASSES)}")
    module, _, attr = DATASET_CLASSES[class_name].rpartition(".")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def open_dataset(settings: Mapping[str, Any], seed: int) -> tuple[Dataset, dict[str, Any]]:
    """The dataset of a `conf/dataset` entry (its `class_name`, the class's arguments, `num_workers`, `pin_memory`
    and an optional `download_hint`) and its loader settings; `seed` picks the `max_size` subset. Raises a one-line
    DatasetError when the data is missing (with the entry's download hint) or unusable."""
    kwargs = dict(settings)
    loader = {key: kwargs.pop(key) for key in ("num_workers", "pin_memory")}
    hint = kwargs.pop("download_hint", None)
    try:
        return build_dataset(dict(kwargs, random_seed=seed)), loader
    except DatasetNotFoundError as err:
        if hint is None:
            raise
        raise DatasetNotFoundError(err.path, hint) from None
