"""Datasets (folder, zip, LMDB, toy), the data module, the dataset tool and conf/dataset, on tiny local data."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import lmdb
import numpy as np
import PIL.Image
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, DistributedSampler

from stylefuse.cli import CONF_DIR
from stylefuse.data import (
    CorruptImageWarning,
    DatasetNotFoundError,
    ImageDataModule,
    ImageFolderDataset,
    LmdbDataset,
    ToyDataset,
    build_dataset,
    open_dataset,
    tool,
)
from stylefuse.data.toy import NUM_CLASSES, foreground_mask, render, sample_codes
from stylefuse.errors import ConfigError, DatasetError
from stylefuse.training.builders import build_datamodule

# ----------------------------------------------------------------------------
# Tiny data written into tmp_path.


def random_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> list[np.ndarray]:
    """n uint8 HWC images (HW for c=1)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8) for _ in range(n)]


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format="png")
    return buf.getvalue()


def write_folder(root: Path, images: dict[str, np.ndarray]) -> Path:
    for name, img in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(png_bytes(img))
    return root


def write_zip(path: Path, images: list[np.ndarray], labels: list | None) -> Path:
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w") as z:
        for name, img in zip(names, images):
            z.writestr(name, png_bytes(img))
        rows = None if labels is None else [[name, label] for name, label in zip(names, labels)]
        z.writestr("dataset.json", json.dumps({"labels": rows}))
    return path


def write_lmdb(path: Path, images: list[np.ndarray], corrupt: tuple[int, ...] = ()) -> tuple[Path, list[bytes]]:
    """An LSUN-style LMDB: 40-hex-digit keys -> JPEG or WebP bytes (garbage at `corrupt`). Returns path, values."""
    values = []
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, img in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(img).save(buf, format="webp" if i % 2 else "jpeg", quality=95)
            values.append(b"\xff\xd8 broken jpeg" if i in corrupt else buf.getvalue())
            txn.put(f"{i * 7919:040x}".encode(), values[-1])
    env.close()
    return path, values


def chw(img: np.ndarray) -> np.ndarray:
    return (img[:, :, None] if img.ndim == 2 else img).transpose(2, 0, 1)


def assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# ----------------------------------------------------------------------------
# ImageFolderDataset.


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


# ----------------------------------------------------------------------------
# Damaged files.


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


# ----------------------------------------------------------------------------
# One-line errors.


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


# ----------------------------------------------------------------------------
# LmdbDataset.


def center_crop_reference(encoded: bytes, resolution: int) -> np.ndarray:
    """Decode, crop the centred square by array slicing, resize with Lanczos: written apart from the library."""
    img = np.asarray(PIL.Image.open(io.BytesIO(encoded)).convert("RGB"))
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
    return np.asarray(PIL.Image.fromarray(img).resize((resolution, resolution), PIL.Image.LANCZOS)).transpose(2, 0, 1)


def striped_images(n: int) -> list[np.ndarray]:
    """Wide images: red side bars that a centre crop removes, a random centre that it keeps."""
    imgs = []
    for img in random_images(n, h=24, w=40, seed=3):
        img[:, :8] = img[:, -8:] = (255, 0, 0)
        img[:, 8:32, 0] //= 4
        imgs.append(img)
    return imgs


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


# ----------------------------------------------------------------------------
# ToyDataset.


def test_toy_deterministic_shapes_and_labels():
    a = ToyDataset(resolution=8, num_images=16, use_labels=True)
    b = ToyDataset(resolution=8, num_images=16, use_labels=True)
    assert len(a) == 16 and a.image_shape == [3, 8, 8] and a.label_dim == NUM_CLASSES
    for i in (0, 5, 15):
        assert a[i][0].dtype == np.uint8 and np.array_equal(a[i][0], b[i][0])
        assert np.array_equal(a[i][1], np.eye(NUM_CLASSES, dtype=np.float32)[sample_codes(0, i)[0].shape])
    other = ToyDataset(resolution=8, num_images=16, seed=1)
    assert not np.array_equal(a[0][0], other[0][0])
    assert not np.array_equal(a[0][0], a[1][0])
    assert ToyDataset(resolution=64, num_images=2)[1][0].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="power of two"):
        ToyDataset(resolution=12)


def test_toy_is_smooth_not_binary():
    img = ToyDataset(resolution=32, num_images=1)[0][0].astype(np.int64)
    # Anti-aliased edges: many distinct levels, and no pixel jumps the full range to its neighbour.
    assert len(np.unique(img)) > 100
    assert np.abs(np.diff(img, axis=2)).max() < 255


def test_toy_coarse_and_fine_vary_independently():
    coarse, fine1 = sample_codes(0, 0)
    coarse2, fine2 = sample_codes(0, 1)
    res = 32
    # Same geometry, a different palette/texture (backgrounds made equal so that only the face can change).
    fine2 = dataclasses.replace(fine2, background_top=fine1.background_top, background_bottom=fine1.background_bottom)
    img1, img2 = render(coarse, fine1, res).astype(np.float64), render(coarse, fine2, res).astype(np.float64)
    mask = foreground_mask(coarse, res)
    # Colour statistics differ ...
    fg = mask > 0.99
    assert np.abs(img1[:, fg].mean(axis=1) - img2[:, fg].mean(axis=1)).max() > 20
    # ... but only inside the foreground mask, which the fine code does not move.
    changed = np.abs(img1 - img2).max(axis=0) > 0
    assert not changed[mask == 0].any()
    assert changed[fg].mean() > 0.9
    # A different coarse code moves the mask.
    mask2 = foreground_mask(coarse2, res)
    iou = ((mask > 0.5) & (mask2 > 0.5)).sum() / ((mask > 0.5) | (mask2 > 0.5)).sum()
    assert iou < 0.9
    # Background pixels follow the fine code only.
    bg = mask == 0
    assert np.array_equal(render(coarse, fine1, res)[:, bg], render(coarse, fine2, res)[:, bg])
    assert not np.array_equal(render(coarse, fine1, res)[:, bg], render(coarse, sample_codes(0, 2)[1], res)[:, bg])


# ----------------------------------------------------------------------------
# Dataset tool.


def test_tool_toy_round_trip_layout(tmp_path):
    dest = tmp_path / "toy.zip"
    assert tool.convert_dataset("toy", str(dest), max_images=12) == 12
    with zipfile.ZipFile(dest) as z:
        names = sorted(z.namelist())
        assert names == sorted([f"00000/img{i:08d}.png" for i in range(12)] + ["dataset.json"])
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())
        assert z.getinfo("00000/img00000000.png").file_size > 32 * 32 * 3  # Uncompressed PNG.
        labels = json.loads(z.read("dataset.json"))["labels"]
    toy = ToyDataset(resolution=32, num_images=12, use_labels=True)
    assert labels[3] == ["00000/img00000003.png", int(toy.get_label(3).argmax())]
    ds = ImageFolderDataset(str(dest), use_labels=True)
    assert len(ds) == 12 and ds.label_dim == toy.label_dim
    for i in range(12):
        assert np.array_equal(ds[i][0], toy[i][0]) and np.array_equal(ds[i][1], toy[i][1])


def test_tool_folder_to_folder_resizes_carries_labels_and_skips_corrupt(tmp_path):
    src = write_folder(tmp_path / "src", {f"{i}.png": img for i, img in enumerate(random_images(3, h=16, w=16))})
    (src / "1.png").write_bytes(b"garbage")
    (src / "dataset.json").write_text(json.dumps({"labels": [["0.png", 1], ["1.png", 0], ["2.png", 3]]}))
    with pytest.warns(CorruptImageWarning, match=r"1\.png"):
        assert tool.convert_dataset(str(src), str(tmp_path / "out"), resolution=8, resize_filter="box") == 2
    ds = ImageFolderDataset(str(tmp_path / "out"), use_labels=True)
    assert len(ds) == 2 and ds.resolution == 8 and ds.label_dim == 4
    box = np.asarray(PIL.Image.open(src / "2.png").resize((8, 8), PIL.Image.BOX)).transpose(2, 0, 1)
    assert np.array_equal(ds[1][0], box) and ds[1][1].argmax() == 3
    with pytest.raises(ConfigError, match="not an empty folder"):
        tool.convert_dataset(str(src), str(tmp_path / "out"), resolution=8)


def test_tool_lmdb_matches_lmdb_dataset(tmp_path):
    path, _ = write_lmdb(tmp_path / "cat_lmdb", striped_images(4))
    tool.convert_dataset(str(path), str(tmp_path / "cat.zip"), resolution=16, transform="center-crop")
    converted, direct = ImageFolderDataset(str(tmp_path / "cat.zip")), LmdbDataset(str(path), resolution=16)
    assert len(converted) == 4
    assert all(np.array_equal(converted[i][0], direct[i][0]) for i in range(4))


def test_tool_center_crop_wide(tmp_path):
    src = write_folder(tmp_path / "cars", {"a.png": random_images(1, h=24, w=32)[0],
                                          "b.png": random_images(1, h=8, w=8)[0]})  # Too small: skipped.
    assert tool.convert_dataset(str(src), str(tmp_path / "w.zip"), resolution=16, transform="center-crop-wide") == 1
    image = ImageFolderDataset(str(tmp_path / "w.zip"))[0][0]
    assert image.shape == (3, 16, 16)
    assert image[:, :2].max() == 0 and image[:, 14:].max() == 0 and image[:, 2:14].max() > 0  # 16x12 band.


def test_tool_refuses_non_square_and_non_power_of_two(tmp_path):
    wide = write_folder(tmp_path / "wide", {"a.png": random_images(1, h=12, w=20)[0]})
    with pytest.raises(DatasetError) as err:
        tool.convert_dataset(str(wide), str(tmp_path / "a.zip"))
    assert_one_line(err, "20x12", "not square", "--transform center-crop --resolution 8")
    assert not (tmp_path / "a.zip").exists()  # The half-written output is removed.
    odd = write_folder(tmp_path / "odd", {"a.png": random_images(1, h=12, w=12)[0]})
    with pytest.raises(DatasetError, match="not a power of two.*--resolution 8"):
        tool.convert_dataset(str(odd), str(tmp_path / "b.zip"))
    with pytest.raises(ConfigError, match="not a power of two"):
        tool.convert_dataset(str(odd), str(tmp_path / "c.zip"), resolution=12)


def test_tool_cli_warns_and_prints_one_line_error(tmp_path, capsys):
    src = write_folder(tmp_path / "src", {"a.png": random_images(1)[0]})
    (src / "b.png").write_bytes(b"garbage")
    tool.main(["--source", str(src), "--dest", str(tmp_path / "ok.zip")])
    assert f"warning: skipping unreadable image {src}/b.png" in capsys.readouterr().err
    assert len(ImageFolderDataset(str(tmp_path / "ok.zip"))) == 1
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--source", str(tmp_path / "missing"), "--dest", str(tmp_path / "x.zip")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset not found") and "\n" not in err


# ----------------------------------------------------------------------------
# ImageDataModule.


def toy_module(batch_size: int = 8, **kwargs) -> ImageDataModule:
    return ImageDataModule(ToyDataset(resolution=8, num_images=32, **kwargs), batch_size=batch_size, seed=3)


def test_datamodule_per_device_batches_shard_one_global_batch():
    single = toy_module(use_labels=True)
    images, labels = next(iter(single.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 8, 8)
    assert labels.dtype == torch.float32 and labels.shape == (8, NUM_CLASSES)
    shards = []
    for rank in range(2):
        dm = toy_module(use_labels=True)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        shard = next(iter(dm.train_dataloader()))
        assert shard[0].shape == (4, 3, 8, 8)
        shards.append(shard[0])
    # The two ranks together see exactly the single-device global batch.
    key = lambda x: sorted(img.numpy().tobytes() for img in x)  # noqa: E731
    assert key(torch.cat(shards)) == key(images)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        toy_module(batch_size=64).train_dataloader()


class _RecordBatches(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, bytes]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch[0].numpy().tobytes()))
        return (self.weight * batch[0].float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_datamodule_runs_across_epochs_under_lightning():
    dm = toy_module(batch_size=16)  # 32 images: 2 batches per epoch.
    model = _RecordBatches()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=6, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert [epoch for epoch, _ in model.seen] == [0, 0, 1, 1, 2, 2]
    assert isinstance(trainer.train_dataloader.sampler, DistributedSampler)  # Lightning kept ours.
    assert model.seen[0][1] != model.seen[2][1]  # Each epoch is reshuffled.
    again = _RecordBatches()
    pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=6, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(again, datamodule=toy_module(batch_size=16))
    assert again.seen == model.seen  # Seeded.


def test_datamodule_reads_zip_with_workers(tmp_path):
    imgs = random_images(8)
    dataset = ImageFolderDataset(path=str(write_zip(tmp_path / "z.zip", imgs, None)), xflip=True)
    dm = ImageDataModule(dataset, batch_size=4, seed=0, num_workers=2)
    assert len(dm.dataset) == 16 and dm.dataset.name == "z" and dm.dataset.training_set_kwargs["xflip"]
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    seen = torch.cat([images for images, _ in loader])
    expected = {chw(i).tobytes() for i in imgs} | {chw(i)[:, :, ::-1].tobytes() for i in imgs}
    assert len(seen) == 16 and {img.numpy().tobytes() for img in seen} == expected


# ----------------------------------------------------------------------------
# conf/dataset/*.yaml


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")))
def test_every_dataset_config_instantiates(option, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFUSE_DATA", str(tmp_path / "data"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=[f"+dataset={option}"])
        if OmegaConf.is_missing(cfg.dataset, "path"):
            cfg = compose(config_name=None, overrides=[f"+dataset={option}", f"dataset.path={tmp_path}/data/x.zip"])
    if "path" not in cfg.dataset:  # Embedded data.
        dm = build_datamodule(*open_dataset(cfg.dataset, seed=0), batch_size=8, seed=0)
        images, labels = next(iter(dm.train_dataloader()))
        assert images.shape == (8, dm.dataset.num_channels, dm.dataset.resolution, dm.dataset.resolution)
        assert labels.shape == (8, dm.dataset.label_dim)
        return
    assert cfg.dataset.path.startswith(str(tmp_path / "data"))
    with pytest.raises(DatasetNotFoundError) as err:
        open_dataset(cfg.dataset, seed=0)
    assert_one_line(err, cfg.dataset.path)


def test_dataset_configs_hints_and_paper_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFUSE_DATA", str(tmp_path))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        ffhq = compose(config_name=None, overrides=["+dataset=ffhq256"]).dataset
        cat = compose(config_name=None, overrides=["+dataset=lsun_cat"]).dataset
        toy = compose(config_name=None, overrides=["+dataset=toy"]).dataset
        folder = compose(config_name=None, overrides=["+dataset=folder", f"dataset.path={tmp_path}/imgs",
                                                      "dataset.num_workers=0"]).dataset
    assert ffhq.xflip and ffhq.resolution == 256 and not cat.xflip and cat.resolution == 256
    assert toy.resolution == 32 and 1000 <= toy.num_images <= 10000 and folder.resolution is None
    with pytest.raises(DatasetNotFoundError) as err:
        open_dataset(ffhq, seed=0)
    assert_one_line(err, "https://github.com/NVlabs/ffhq-dataset", "--resolution 256 --resize-filter box",
                    f"--dest {tmp_path}/ffhq256x256.zip")
    with pytest.raises(DatasetNotFoundError) as err:
        open_dataset(cat, seed=0)
    assert_one_line(err, "http://dl.yf.io/lsun/objects/cat.zip", "data.mdb")
    write_folder(tmp_path / "imgs", {f"{i}.png": img for i, img in enumerate(random_images(8))})
    dm = build_datamodule(*open_dataset(folder, seed=0), batch_size=4, seed=0)
    assert dm.dataset.resolution == 8 and dm.dataset.name == "imgs"
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 4
