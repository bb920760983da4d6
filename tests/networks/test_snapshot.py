"""Our own network files: stylefuse snapshots and Lightning checkpoints of the training module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from stylefuse.errors import NetworkFileError
from stylefuse.networks import load_network_pkl, save_network_snapshot
from tests.helpers import assert_one_line
from tests.networks.reference import G_KWARGS, TRAINING_SET_KWARGS, assert_same_networks


def test_stylefuse_snapshot_roundtrip(tmp_path, nets, inputs, outputs):
    path = tmp_path / "run" / "network-snapshot-000040.pt"
    training_set_kwargs = OmegaConf.create(TRAINING_SET_KWARGS)  # Hydra configs are saved as plain data
    save_network_snapshot(path, nets["G"], nets["D"], nets["G_ema"], augment_p=np.float64(0.125),
                          training_set_kwargs=training_set_kwargs, kimg=40.5)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind

    loaded = load_network_pkl(path)

    assert_same_networks(loaded, nets, inputs, outputs)
    assert loaded["augment_p"] == 0.125 and type(loaded["augment_p"]) is float
    assert loaded["training_set_kwargs"] == TRAINING_SET_KWARGS and type(loaded["training_set_kwargs"]) is dict
    raw = torch.load(path, weights_only=True)
    assert (raw["format"], raw["version"], raw["kimg"]) == ("stylefuse-snapshot", 1, 40.5)
    assert loaded["G"].init_kwargs == G_KWARGS and loaded["D"].init_kwargs == nets["D"].init_kwargs


def _lightning_checkpoint(nets: dict, augment_p: float | None, hyper_parameters: dict) -> dict:
    state_dict = {f"{key}.{name}": tensor
                  for key in ("G", "D", "G_ema") for name, tensor in nets[key].state_dict().items()}
    if augment_p is not None:
        state_dict["augment_pipe.p"] = torch.tensor(augment_p)
    return {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.5.0", "state_dict": state_dict,
            "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
            "hyper_parameters": hyper_parameters}


@pytest.mark.parametrize("augment_p", [0.375, None])
def test_lightning_checkpoint_roundtrip(tmp_path, nets, inputs, outputs, augment_p):
    path = tmp_path / "last.ckpt"
    hparams = dict(G_kwargs=nets["G"].init_kwargs, D_kwargs=nets["D"].init_kwargs, lr=0.002,
                   training_set_kwargs=TRAINING_SET_KWARGS if augment_p is not None else None)
    torch.save(_lightning_checkpoint(nets, augment_p, hparams), path)

    loaded = load_network_pkl(str(path))

    assert_same_networks(loaded, nets, inputs, outputs)
    assert loaded["augment_p"] == augment_p
    assert loaded["training_set_kwargs"] == (TRAINING_SET_KWARGS if augment_p is not None else None)


@pytest.mark.parametrize("hyper_parameters, expected", [
    (lambda nets: dict(D_kwargs=nets["D"].init_kwargs), "without hyper-parameters G_kwargs"),
    (lambda nets: dict(G_kwargs=OmegaConf.create(nets["G"].init_kwargs), D_kwargs=nets["D"].init_kwargs),
     "omegaconf"),
    (lambda nets: dict(G_kwargs=dict(nets["G"].init_kwargs, img_resolution=64), D_kwargs=nets["D"].init_kwargs),
     "missing synthesis.b64"),
])
def test_bad_lightning_checkpoint_refused(tmp_path, nets, hyper_parameters, expected):
    path = tmp_path / "bad.ckpt"
    torch.save(_lightning_checkpoint(nets, 0.5, hyper_parameters(nets)), path)
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, expected)
