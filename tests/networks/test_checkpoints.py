"""Lightning checkpoints through Lightning's own APIs: `Trainer.fit(ckpt_path=...)` with SafeCheckpointIO
resumes a real checkpoint and refuses a crafted one (nothing in it runs, even with torch.load's protection turned off
by the environment); `read_checkpoint` bounds the network kwargs of a checkpoint's hyper-parameters."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks.checkpoint_io import SafeCheckpointIO
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
    trainer = _trainer(tmp_path, max_steps=4, plugins=[SafeCheckpointIO()])
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
        _trainer(tmp_path, max_steps=4, plugins=[SafeCheckpointIO()]).fit(_Tiny(), ckpt_path=crafted)
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


# ---------------------------------------------------------------------------------------------------------------------
# The training module's checkpoints: Lightning's load_from_checkpoint instantiates nothing named in the file.

def _module_checkpoint(tmp_path, **hparams_edits) -> tuple:
    """A StyleGAN2Module checkpoint (tiny networks) with edited hyper-parameters, as Lightning writes one."""
    from stylefuse.training.module import StyleGAN2Module

    torch.manual_seed(0)
    G_kwargs = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
                    synthesis_kwargs=dict(channel_base=64, channel_max=8))
    D_kwargs = dict(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=8)
    module = StyleGAN2Module(G_kwargs=G_kwargs, D_kwargs=D_kwargs, loss_kwargs=dict(r1_gamma=1.0),
                             optim_kwargs=dict(lr=0.002, betas=[0, 0.99], eps=1e-8), batch_size=4, batch_gpu=4,
                             total_kimg=1, augment_kwargs=dict(xflip=1.0), augment_p=0.2)
    hparams = dict(module.hparams) | hparams_edits
    path = tmp_path / "module.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams, "epoch": 0, "global_step": 0,
                "pytorch-lightning_version": pl.__version__}, path)
    return StyleGAN2Module, path


def test_module_checkpoint_loads_through_lightning_and_ours(tmp_path):
    StyleGAN2Module, path = _module_checkpoint(tmp_path)
    module = StyleGAN2Module.load_from_checkpoint(path)
    assert module.augment_p == pytest.approx(0.2) and module.hparams.augment_kwargs == dict(xflip=1.0)
    assert set(read_checkpoint(path)["hyper_parameters"]) >= {"G_kwargs", "D_kwargs", "augment_kwargs"}


@pytest.mark.parametrize("edits", [
    lambda marker: dict(augment_kwargs={"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}),
    lambda marker: dict(G_kwargs={"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}),
    lambda marker: dict(loss_kwargs={"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}),
    lambda marker: dict(_instantiator="pathlib.Path.touch"),
])
def test_module_checkpoint_with_callable_paths_runs_nothing(tmp_path, edits):
    marker = tmp_path / "marker"
    StyleGAN2Module, path = _module_checkpoint(tmp_path, **edits(marker))
    with pytest.raises((TypeError, ValueError)):  # the names are plain strings: unknown arguments, not calls
        StyleGAN2Module.load_from_checkpoint(path)
    assert not marker.exists()


def test_module_loader_runs_nothing_even_with_torchs_protection_off(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    StyleGAN2Module, path = _module_checkpoint(tmp_path)
    data = torch.load(path, weights_only=True)
    data["callbacks"] = {"evil": _Call(os.system, f"touch {marker}")}
    torch.save(data, path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(NetworkFileError, match="which a network file never needs"):
        StyleGAN2Module.load_from_checkpoint(path)
    assert not marker.exists()
    data["callbacks"] = {}
    data["hyper_parameters"]["G_kwargs"]["w_dim"] = 2**22  # would build a huge mapping network
    torch.save(data, path)
    with pytest.raises(NetworkFileError, match="w_dim is 4194304"):
        StyleGAN2Module.load_from_checkpoint(path)


def test_crafted_checkpoint_is_refused_before_a_resume(tmp_path, checkpoint):
    """`train.py resume=<ckpt>` asks is_training_checkpoint first, which reads the file with every check."""
    from stylefuse.networks.snapshot import is_training_checkpoint

    marker = tmp_path / "marker"
    data = torch.load(checkpoint, weights_only=True)
    data["loops"] = {"fit_loop": _Call(os.system, f"touch {marker}")}
    torch.save(data, tmp_path / "crafted.ckpt")
    with pytest.raises(NetworkFileError, match="which a network file never needs"):
        is_training_checkpoint(tmp_path / "crafted.ckpt")
    assert not marker.exists()
    assert is_training_checkpoint(checkpoint)
