"""ImageFolderDataset (folders, zips, labels, mirroring, subsets, damaged files, one-line errors) and LmdbDataset."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stylefuse.data import CorruptImageWarning, DatasetNotFoundError, ImageFolderDataset, LmdbDataset, build_dataset
from stylefuse.errors import ConfigError, DatasetError
from tests.data.files import (
    center_crop_reference,
    chw,
    png_bytes,
    random_images,
    striped_images,
    write_folder,
    write_lmdb,
    write_zip,
)
from tests.helpers import assert_one_line


def test_folder_sorted_recursive_and_rebuilt_from_kwargs(tmp_path):
    imgs = random_images(4)
    names = ["b/2.png", "a/9.png", "b/10.png", "top.png"]  # sorted: a/9, b/10, b/2, top
    root = write_folder(tmp_path / "faces", dict(zip(names, imgs)))
    (root / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(str(root))
    order = np.argsort(names)
    assert len(ds) == 4 and ds.name == "faces" and ds.resolution == 8 and ds.num_channels == 3
    assert ds.image_shape == [3, 8, 8] and ds.label_shape == [0] and ds.label_dim == 0 and not ds.has_labels
    for i, j in enumerate(order):
        image, label = ds[i]
        assert image.dtype == np.uint8 and np.array_equal(image, chw(imgs[j]))
        assert label.dtype == np.float32 and label.shape == (0,)
    kwargs = ds.training_set_kwargs
    assert kwargs == dict(class_name="stylefuse.data.datasets.ImageFolderDataset", path=str(root), resolution=8,
                          use_labels=False, max_size=None, xflip=False, random_seed=0)
    rebuilt = build_dataset(kwargs)
    assert all(np.array_equal(rebuilt[i][0], ds[i][0]) for i in range(4))


def test_grayscale_folder_is_one_channel(tmp_path):
    imgs = random_images(2, c=1)
    ds = ImageFolderDataset(str(write_folder(tmp_path / "gray", {"0.png": imgs[0], "1.png": imgs[1]})))
    assert ds.num_channels == 1 and np.array_equal(ds[1][0], imgs[1][None])


def test_zip_labels_become_one_hot(tmp_path):
    imgs = random_images(5)
    path = write_zip(tmp_path / "cls.zip", imgs, [2, 0, 4, 2, 1])
    ds = ImageFolderDataset(str(path), use_labels=True)
    assert ds.label_dim == 5 and ds.has_labels
    assert np.array_equal(ds[2][0], chw(imgs[2]))
    label = ds[2][1]
    assert label.dtype == np.float32 and np.array_equal(label, np.eye(5, dtype=np.float32)[4])
    assert np.array_equal(ds.get_label(0), np.eye(5, dtype=np.float32)[2])
    assert ImageFolderDataset(str(path), use_labels=False).label_dim == 0


def test_zip_float_vector_labels_kept(tmp_path):
    vectors = [[0.5, -1.0, 2.0], [0.0, 0.25, 1.0]]
    ds = ImageFolderDataset(str(write_zip(tmp_path / "vec.zip", random_images(2), vectors)), use_labels=True)
    assert ds.label_shape == [3] and np.array_equal(ds[1][1], np.float32(vectors[1]))


def test_zip_pickles_and_reads_in_workers(tmp_path):
    imgs = random_images(8)
    ds = ImageFolderDataset(str(write_zip(tmp_path / "w.zip", imgs, None)))
    ds[0]  # Opens the zip in this process.
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[3][0], chw(imgs[3]))
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert np.array_equal(torch.cat([b[0] for b in batches]).numpy(), np.stack([chw(i) for i in imgs]))


def test_xflip_doubles_and_mirrors(tmp_path):
    imgs = random_images(3)
    ds = ImageFolderDataset(str(write_zip(tmp_path / "x.zip", imgs, [0, 1, 2])), use_labels=True, xflip=True)
    assert len(ds) == 6
    for i in range(3):
        assert np.array_equal(ds[i][0], chw(imgs[i]))
        assert np.array_equal(ds[i + 3][0], chw(imgs[i])[:, :, ::-1])
        assert np.array_equal(ds[i + 3][1], ds[i][1])


def test_max_size_is_a_sorted_seeded_random_subset(tmp_path):
    imgs = random_images(10)
    path = str(write_zip(tmp_path / "s.zip", imgs, None))
    ds = ImageFolderDataset(path, max_size=4, random_seed=7)
    perm = np.arange(10)
    np.random.RandomState(7).shuffle(perm)
    expected = np.sort(perm[:4])
    assert len(ds) == 4
    for i, j in enumerate(expected):
        assert np.array_equal(ds[i][0], chw(imgs[j]))
    other = ImageFolderDataset(path, max_size=4, random_seed=8)
    assert not all(np.array_equal(other[i][0], ds[i][0]) for i in range(4))
    assert len(ImageFolderDataset(path, max_size=4, random_seed=7, xflip=True)) == 8
    assert len(ImageFolderDataset(path, max_size=20)) == 10


def test_corrupt_image_skipped_with_one_warning_naming_it(tmp_path):
    imgs = random_images(4)
    root = write_folder(tmp_path / "d", {f"{i}.png": img for i, img in enumerate(imgs)})
    (root / "1.png").write_bytes(png_bytes(imgs[1])[:60])  # Header intact, pixel data cut off.
    (root / "3.png").write_bytes(b"definitely not a png")  # Not even a header.
    with pytest.warns(CorruptImageWarning, match=r"3\.png"):
        ds = ImageFolderDataset(str(root))
    assert len(ds) == 4
    with pytest.warns(CorruptImageWarning, match=r"1\.png"):
        image, _ = ds[1]
    assert np.array_equal(image, chw(imgs[2]))  # The next readable image stands in.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Once per file: no second warning.
        assert np.array_equal(ds[1][0], chw(imgs[2]))
        assert np.array_equal(ds[3][0], chw(imgs[0]))  # Wraps around past the end.


def test_missing_path_error_names_path_and_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        ImageFolderDataset(str(tmp_path / "nowhere.zip"))
    assert_one_line(err, "nowhere.zip", "dataset.path", "python -m stylefuse.data.tool")


def test_empty_folder_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(tmp_path / "empty"))
    assert_one_line(err, "no images found")


def test_non_square_error_points_to_tool(tmp_path):
    root = write_folder(tmp_path / "wide", {"0.png": random_images(1, h=12, w=20)[0]})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root))
    assert_one_line(err, "20x12", "not square", "--transform center-crop --resolution 8")


def test_non_power_of_two_error_points_to_tool(tmp_path):
    root = write_folder(tmp_path / "odd", {"0.png": random_images(1, h=24, w=24)[0]})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root))
    assert_one_line(err, "24x24", "not a power of two", "python -m stylefuse.data.tool", "--resolution 16")


def test_mismatching_shapes_error(tmp_path):
    root = write_folder(tmp_path / "mix", {"a.png": random_images(1)[0], "b.png": random_images(1, h=16, w=16)[0]})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root))
    assert_one_line(err, "differ in shape", "b.png", "--resolution 8")
    assert "--channels" not in str(err.value)


def test_mixed_greyscale_and_colour_error_points_to_channels(tmp_path):
    root = write_folder(tmp_path / "mix", {"a.png": random_images(1)[0], "b.png": random_images(1, c=1)[0]})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root))
    assert_one_line(err, "differ in shape", "[3, 8, 8]", "[1, 8, 8]", "--channels rgb")
    assert "--resolution" not in str(err.value)  # the images have one size already


def test_resolution_mismatch_error(tmp_path):
    root = write_folder(tmp_path / "r", {"a.png": random_images(1)[0]})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root), resolution=16)
    assert_one_line(err, "dataset.resolution", "--resolution 16")


def test_labels_requested_but_missing_error(tmp_path):
    path = write_zip(tmp_path / "nolabels.zip", random_images(2), None)
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(path), use_labels=True)
    assert_one_line(err, "no labels", "dataset.use_labels=false", "dataset.json")
    root = write_folder(tmp_path / "plain", {"a.png": random_images(1)[0]})
    with pytest.raises(DatasetError, match="no labels"):
        ImageFolderDataset(str(root), use_labels=True)


def test_unsupported_channel_count_error(tmp_path):
    rgba = random_images(1, c=4)[0]
    root = write_folder(tmp_path / "alpha", {"a.png": rgba})
    with pytest.raises(DatasetError) as err:
        ImageFolderDataset(str(root))
    assert_one_line(err, "RGBA", "python -m stylefuse.data.tool")


def test_build_dataset_refuses_unknown_classes():
    with pytest.raises(ConfigError, match="unknown dataset class 'os.system'"):
        build_dataset(dict(class_name="os.system", command="true"))


def test_build_dataset_accepts_official_kwargs(tmp_path):
    path = write_zip(tmp_path / "off.zip", random_images(3), None)
    official = dict(class_name="training.dataset.ImageFolderDataset", path=str(path), use_labels=False, max_size=3,
                    xflip=True, resolution=8, random_seed=0)
    ds = build_dataset(official)
    assert isinstance(ds, ImageFolderDataset) and len(ds) == 6


def test_lmdb_center_crops_and_resizes(tmp_path):
    path, encoded = write_lmdb(tmp_path / "cat_lmdb", striped_images(5))
    ds = LmdbDataset(str(path), resolution=16)
    assert len(ds) == 5 and ds.image_shape == [3, 16, 16] and ds.name == "cat_lmdb" and ds.label_dim == 0
    for i in range(5):
        image = ds[i][0]
        assert image.dtype == np.uint8 and np.array_equal(image, center_crop_reference(encoded[i], 16))
        assert image[0].max() < 200  # The red bars were cropped away.
    assert len(LmdbDataset(str(path), resolution=16, max_images=2)) == 2
    rebuilt = build_dataset(ds.training_set_kwargs)  # A second dataset on the same LMDB in this process.
    assert np.array_equal(rebuilt[4][0], ds[4][0])
    in_workers = torch.cat([images for images, _ in DataLoader(ds, batch_size=1, num_workers=2)])
    assert np.array_equal(in_workers.numpy(), np.stack([ds[i][0] for i in range(5)]))


def test_lmdb_errors_and_corrupt_value(tmp_path):
    path, _ = write_lmdb(tmp_path / "lmdb", striped_images(3))
    with pytest.raises(DatasetError) as err:
        LmdbDataset(str(path), resolution=16, use_labels=True)
    assert_one_line(err, "no labels", "dataset.use_labels=false")
    with pytest.raises(DatasetError, match="not a power of two"):
        LmdbDataset(str(path), resolution=24)
    with pytest.raises(DatasetNotFoundError):
        LmdbDataset(str(tmp_path / "missing_lmdb"), resolution=16)
    path, _ = write_lmdb(tmp_path / "damaged_lmdb", striped_images(3), corrupt=(1,))
    ds = LmdbDataset(str(path), resolution=16)
    with pytest.warns(CorruptImageWarning, match=f"{7919:040x}"):
        assert np.array_equal(ds[1][0], ds[2][0])
