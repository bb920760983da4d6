"""The dataset tool: conversions between folders, zips, LMDBs and the toy set, resizing, cropping, errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import PIL.Image
import pytest

from stylefuse.data import CorruptImageWarning, ImageFolderDataset, LmdbDataset, ToyDataset, tool
from stylefuse.errors import ConfigError, DatasetError
from tests.data.files import decompression_bomb, random_images, striped_images, write_folder, write_lmdb
from tests.helpers import assert_one_line


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


def test_tool_mixed_greyscale_and_colour_needs_channels(tmp_path):
    colour, grey = random_images(1, c=3)[0], random_images(1, c=1, seed=1)[0]
    src = write_folder(tmp_path / "mixed", {"a.png": colour, "b.png": grey})
    with pytest.raises(DatasetError) as err:  # --resolution was given: the advice is about the channels only
        tool.convert_dataset(str(src), str(tmp_path / "x.zip"), resolution=8)
    assert_one_line(err, "b.png becomes 8x8 L", "a.png became 8x8 RGB", "add --channels rgb")
    assert "--resolution" not in str(err.value)
    assert tool.convert_dataset(str(src), str(tmp_path / "rgb.zip"), resolution=8, channels="rgb") == 2
    ds = ImageFolderDataset(str(tmp_path / "rgb.zip"))
    assert ds.num_channels == 3 and np.array_equal(ds[0][0], colour.transpose(2, 0, 1))
    assert np.array_equal(ds[1][0], np.stack([grey] * 3))  # greyscale promoted: three equal channels
    assert tool.convert_dataset(str(src), str(tmp_path / "l.zip"), channels="l") == 2
    ds = ImageFolderDataset(str(tmp_path / "l.zip"))
    assert ds.num_channels == 1 and np.array_equal(ds[0][0][0], np.asarray(PIL.Image.fromarray(colour).convert("L")))


def test_tool_destinations(tmp_path):
    src = write_folder(tmp_path / "src", {"a.png": random_images(1)[0]})
    assert tool.convert_dataset(str(src), str(tmp_path / "new" / "folder" / "a.zip")) == 1  # missing folders made
    (tmp_path / "file").write_text("in the way")
    for dest in [tmp_path / "file" / "a.zip", tmp_path / "file" / "out"]:
        with pytest.raises(ConfigError) as err:
            tool.convert_dataset(str(src), str(dest))
        assert_one_line(err, f"cannot write --dest {dest} (a file is in the way", "choose a path")
    # A failed conversion leaves an older zip at --dest as it was, and no partial file.
    old = tmp_path / "old.zip"
    old.write_bytes(b"an older dataset")
    wide = write_folder(tmp_path / "wide", {"a.png": random_images(1, h=8, w=16)[0]})
    with pytest.raises(DatasetError, match="not square"):
        tool.convert_dataset(str(wide), str(old))
    assert old.read_bytes() == b"an older dataset" and sorted(p.name for p in tmp_path.glob("old*")) == ["old.zip"]


def test_tool_skips_decompression_bombs(tmp_path, capsys):
    src = write_folder(tmp_path / "src", {"a.png": random_images(1)[0]})
    (src / "bomb.png").write_bytes(decompression_bomb())
    tool.main(["--source", str(src), "--dest", str(tmp_path / "out.zip")])
    warnings_printed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings_printed) == 1 and f"{src}/bomb.png" in warnings_printed[0]
    assert "decompression bomb" in warnings_printed[0]
    assert len(ImageFolderDataset(str(tmp_path / "out.zip"))) == 1
