"""MetricsCallback: pickles for ddp_spawn, one-line errors, evaluation at kimg multiples (jsonl and logger)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from stylefuse.errors import ConfigError
from stylefuse.metrics import MetricsCallback
from tests.helpers import tiny_generator
from tests.metrics.stand_ins import MemoryDataset, RandomFeatures, random_images


def test_callback_pickles_for_ddp_spawn() -> None:
    callback = pickle.loads(pickle.dumps(MetricsCallback(metrics=["fid50k_full", "is50k"], every_kimg=4)))
    assert callback.metrics == ["fid50k_full", "is50k"] and callback.every_kimg == 4


def test_unknown_metric_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown metric fid10k_ful; choose from fid50k_full") as err:
        MetricsCallback(metrics=["fid10k_ful"], every_kimg=1)
    assert "\n" not in str(err.value)


class KimgModule(pl.LightningModule):
    """The parts of the training module the callback reads: `G_ema` and `kimg`."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G_ema = tiny_generator(seed=0).eval().requires_grad_(False)
        self.cur_nimg = 0

    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    def training_step(self, batch, batch_idx: int) -> None:
        self.cur_nimg += batch[0].shape[0]

    def configure_optimizers(self) -> None:
        return None


class MemoryDataModule(pl.LightningDataModule):
    def __init__(self, dataset: MemoryDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.dataset, batch_size=4)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on this minimal module
def test_callback_evaluates_at_kimg_multiples_and_writes_jsonl(tmp_path) -> None:
    num_batches, expected_kimg = 6, [0.004, 0.012, 0.02, 0.024]  # first batch, each 0.01 crossed, end of training
    dataset = MemoryDataset(random_images(24))
    callback = MetricsCallback(metrics=["fid50k_full"], every_kimg=0.01, num_gen=16, cache_dir=str(tmp_path / "cache"),
                               batch_size=16, verbose=False, detectors={"inception": RandomFeatures()})
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=num_batches, callbacks=[callback],
                         logger=pl.loggers.CSVLogger(tmp_path, name="log"), default_root_dir=tmp_path / "run",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(KimgModule(), datamodule=MemoryDataModule(dataset))

    lines = [json.loads(line) for line in (tmp_path / "run" / "metric-fid16_full.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == pytest.approx(expected_kimg)
    assert all(line["metric"] == "fid16_full" and line["num_gpus"] == 1 for line in lines)
    fids = [line["results"]["fid16_full"] for line in lines]
    assert all(np.isfinite(fids)) and len(set(fids)) == 1  # G_ema is fixed and the seed too
    assert dataset.reads == num_batches * 4 + 24  # training reads + real statistics once (then the cache)
    assert trainer.callback_metrics["metrics/fid16_full"].item() == pytest.approx(fids[-1])
    csv = (tmp_path / "log" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "metrics/fid16_full" in csv[0] and "progress/kimg" in csv[0] and len(csv) == 1 + len(expected_kimg)
    # Already evaluated at this kimg (as when the last batch lands on a multiple): the end adds nothing.
    callback.on_train_end(trainer, trainer.lightning_module)
    assert len((tmp_path / "run" / "metric-fid16_full.jsonl").read_text().splitlines()) == len(expected_kimg)
