"""Lightning checkpoints through Lightning's own APIs: `Trainer.fit(ckpt_path=...)` with RestrictedCheckpointIO
resumes a real checkpoint and refuses a crafted one (nothing in it runs, even with torch.load's protection turned off
by the environment); `read_checkpoint` bounds the network kwargs of a checkpoint's hyper-parameters."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.checkpoint_io import RestrictedCheckpointIO
from stylefuse.networks.snapshot import read_checkpoint

pytestmark = [pytest.mark.filterwarnings("ignore:Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"),
              pytest.mark.filterwarnings("ignore:The '\\w+_dataloader' does not have many workers"),
              pytest.mark.filterwarnings("ignore:.*GPU available")]


class _Tiny(pl.LightningModule):
    def __init__(self, width: int = 4):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(16, self.hparams.width))
        return torch.utils.data.DataLoader(data, batch_size=4)


def _trainer(tmp_path, max_steps: int, **kwargs) -> pl.Trainer:
    return pl.Trainer(max_steps=max_steps, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1, **kwargs)


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fit")
    trainer = _trainer(folder, max_steps=2)
    trainer.fit(_Tiny())
    path = folder / "real.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_real_checkpoint_resumes_through_the_restricted_reader(tmp_path, checkpoint):
    model = _Tiny()
    trainer = _trainer(tmp_path, max_steps=4, plugins=[RestrictedCheckpointIO()])
    trainer.fit(model, ckpt_path=checkpoint)
    assert trainer.global_step == 4
    expected = torch.load(checkpoint, weights_only=True)
    assert read_checkpoint(checkpoint)["global_step"] == expected["global_step"] == 2


def test_crafted_checkpoint_runs_nothing_through_trainer_fit(tmp_path, checkpoint, monkeypatch):
    marker = tmp_path / "marker"
    data = torch.load(checkpoint, weights_only=True)
    data["callbacks"] = {"evil": _Call(os.system, f"touch {marker}")}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(data, crafted)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch.load's own protection turned off

    with pytest.raises(NetworkFileError) as err:
        _trainer(tmp_path, max_steps=4, plugins=[RestrictedCheckpointIO()]).fit(_Tiny(), ckpt_path=crafted)
    assert "\n" not in str(err.value) and f"refers to {os.system.__module__}.system" in str(err.value)
    assert not marker.exists()

    _trainer(tmp_path, max_steps=4).fit(_Tiny(), ckpt_path=crafted)  # the canary: Lightning's default reader
    assert marker.exists()                                            # runs it in this environment


@pytest.mark.parametrize("edit, expected", [
    (lambda h: h.update(G_kwargs=dict(z_dim=8, c_dim=0, w_dim=2**22, img_resolution=8, img_channels=3)),
     "hyper-parameter G_kwargs: w_dim is 4194304"),
    (lambda h: h.update(D_kwargs=dict(c_dim=0, img_resolution=2**20, img_channels=3)), "img_resolution"),
])
def test_checkpoint_with_unbounded_network_kwargs_is_refused(tmp_path, checkpoint, edit, expected):
    data = torch.load(checkpoint, weights_only=True)
    edit(data["hyper_parameters"])
    path = tmp_path / "big.ckpt"
    torch.save(data, path)
    with pytest.raises(NetworkFileError, match=expected):
        read_checkpoint(path)
