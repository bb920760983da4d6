"""ImageDataModule (per-device batches, epochs under Lightning, workers) and the conf/dataset options that build it."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from stylefuse.cli import CONF_DIR
from stylefuse.data import DatasetNotFoundError, ImageDataModule, ImageFolderDataset, ToyDataset, open_dataset
from stylefuse.data.toy import NUM_CLASSES
from stylefuse.training.builders import build_datamodule
from tests.data.files import chw, random_images, write_folder, write_zip
from tests.helpers import assert_one_line, compose_cfg


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
    # Fewer images than a batch: the stream runs on into the next epoch.
    assert next(iter(toy_module(batch_size=48).train_dataloader()))[0].shape == (48, 3, 8, 8)


class _RecordBatches(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[bytes] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch[0].numpy().tobytes())
        return (self.weight * batch[0].float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(dm: ImageDataModule, steps: int) -> _RecordBatches:
    model = _RecordBatches()
    pl.Trainer(accelerator="cpu", devices=1, max_epochs=-1, max_steps=steps, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
               ).fit(model, datamodule=dm)
    return model


def test_datamodule_streams_across_epochs_and_resumes_at_its_position():
    dm = toy_module(batch_size=16)  # 32 images: 2 batches per epoch of the stream.
    model = _fit(dm, steps=6)
    assert dm.state_dict() == {"seed": 3, "position": 96}  # images handed to the training step
    images = [np.frombuffer(b, np.uint8).reshape(16, -1) for b in model.seen]
    for epoch in range(3):  # every image once per epoch, in a new order each epoch
        pair = np.concatenate(images[2 * epoch: 2 * epoch + 2])
        assert len({row.tobytes() for row in pair}) == 32
    assert model.seen[0] != model.seen[2]
    assert _fit(toy_module(batch_size=16), steps=6).seen == model.seen  # seeded
    resumed = toy_module(batch_size=16)
    resumed.load_state_dict({"seed": 3, "position": 48})  # as a checkpoint after 3 batches restores it
    assert _fit(resumed, steps=3).seen == model.seen[3:]


def test_datamodule_reads_zip_with_workers(tmp_path):
    imgs = random_images(8)
    dataset = ImageFolderDataset(path=str(write_zip(tmp_path / "z.zip", imgs, None)), xflip=True)
    dm = ImageDataModule(dataset, batch_size=4, seed=0, num_workers=2)
    assert len(dm.dataset) == 16 and dm.dataset.name == "z" and dm.dataset.training_set_kwargs["xflip"]
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    seen = torch.cat([images for images, _ in itertools.islice(loader, 4)])  # one epoch of the endless stream
    expected = {chw(i).tobytes() for i in imgs} | {chw(i)[:, :, ::-1].tobytes() for i in imgs}
    assert len(seen) == 16 and {img.numpy().tobytes() for img in seen} == expected


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")))
def test_every_dataset_config_instantiates(option, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFUSE_DATA", str(tmp_path / "data"))
    cfg = compose_cfg(None, [f"+dataset={option}"])
    if OmegaConf.is_missing(cfg.dataset, "path"):
        cfg = compose_cfg(None, [f"+dataset={option}", f"dataset.path={tmp_path}/data/x.zip"])
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
    ffhq = compose_cfg(None, ["+dataset=ffhq256"]).dataset
    cat = compose_cfg(None, ["+dataset=lsun_cat"]).dataset
    toy = compose_cfg(None, ["+dataset=toy"]).dataset
    folder = compose_cfg(None, ["+dataset=folder", f"dataset.path={tmp_path}/imgs", "dataset.num_workers=0"]).dataset
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
