"""`python train.py`: a short fit on the toy dataset, its outputs, exact resume, transfer, sweeps and errors."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from stylefuse.networks import load_network_pkl
from stylefuse.training.run import train as run_train
from tests.helpers import REPO, compose_cfg

# Small enough for seconds on a CPU: 16x16 toy images, 16-wide networks, batch 8.
TINY = ["experiment=debug", "logger=csv", "dataset.resolution=16", "dataset.num_images=64", "model.channel_base=256",
        "model.channel_max=16", "model.z_dim=16", "model.w_dim=16", "model.batch_size=8", "augment=ada",
        "augment.kimg=0.1", "total_kimg=0.064", "kimg_per_tick=0.016", "snapshot_kimg=0.032"]


def compose_train(run_dir: Path, overrides: list[str]):
    cfg = compose_cfg("train", TINY + overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # as in a real run: the job's config does not carry the hydra node
        cfg.paths.output_dir = str(run_dir)
        del cfg.callbacks.progress
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    run_dir = tmp_path_factory.mktemp("run")
    result = run_train(compose_train(run_dir, []))
    return run_dir, result


def test_fit_writes_grid_checkpoints_network_and_logs(trained):
    run_dir, result = trained
    assert result["kimg"] == pytest.approx(0.064)
    for name in ["config.yaml", "reals.png", "fakes000000.008.png", "network-snapshot-000000.032.pt", "stats.jsonl",
                 "figure4.png", "checkpoints/last.ckpt", "csv/metrics.csv"]:
        assert (run_dir / name).is_file(), name
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [round(t["kimg"], 3) for t in ticks] == [0.008, 0.024, 0.04, 0.056, 0.064]
    for key in ["loss/G", "loss/D", "loss/r1_penalty", "loss/pl_penalty", "scores/real", "scores/fake",
                "augment/p", "timing/sec_per_kimg"]:
        values = [t[key] for t in ticks if key in t]
        assert key in ticks[0] and all(v == v and abs(v) < 1e6 for v in values), key  # present and finite
    assert any(t["augment/p"] > 0 for t in ticks[1:])  # ADA reacted (kimg 0.1 makes it fast)


def test_checkpoint_and_snapshot_load_as_networks(trained):
    run_dir, _ = trained
    from_ckpt = load_network_pkl(str(run_dir / "checkpoints" / "last.ckpt"))
    from_snapshot = load_network_pkl(str(run_dir / "network-snapshot-000000.064.pt"))
    z = torch.randn([2, 16])
    img = from_ckpt["G_ema"](z, None, noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert from_ckpt["training_set_kwargs"]["class_name"].endswith("ToyDataset")
    assert from_snapshot["augment_p"] == pytest.approx(from_ckpt["augment_p"])


def test_resume_continues_at_the_saved_kimg_with_the_same_state(trained, tmp_path):
    run_dir, _ = trained
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt_path, weights_only=True)
    seen = {}

    import pytorch_lightning as pl

    class Inspect(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["cur_nimg"] = int(pl_module.cur_nimg)
            seen["state"] = {k: v.clone() for k, v in pl_module.state_dict().items()}
            seen["adam_G"] = copy.deepcopy(trainer.optimizers[0].state_dict())

    result = run_train(compose_train(tmp_path, [f"resume={ckpt_path}", "total_kimg=0.096"]), [Inspect()])
    state = seen
    assert state["cur_nimg"] == int(saved["state_dict"]["cur_nimg"]) == 64
    for name, value in saved["state_dict"].items():
        assert torch.equal(state["state"][name], value), name
    saved_adam = saved["optimizer_states"][0]["state"]
    assert all(torch.equal(state["adam_G"]["state"][k]["exp_avg_sq"], v["exp_avg_sq"]) and
               float(state["adam_G"]["state"][k]["step"]) == float(v["step"]) == 10 for k, v in saved_adam.items())
    assert result["kimg"] == pytest.approx(0.096)


def test_transfer_from_a_network_file_copies_the_weights(trained, tmp_path):
    run_dir, _ = trained
    source = load_network_pkl(str(run_dir / "network-snapshot-000000.064.pt"))
    cfg = compose_train(tmp_path, [f"resume={run_dir / 'network-snapshot-000000.064.pt'}", "total_kimg=0.008"])
    seen: dict = {}

    import pytorch_lightning as pl

    class Inspect(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["G"] = {k: v.clone() for k, v in pl_module.G.state_dict().items()}
            seen["cur_nimg"] = int(pl_module.cur_nimg)

    run_train(cfg, [Inspect()])
    assert seen["cur_nimg"] == 0  # transfer learning starts a new run
    assert all(torch.equal(seen["G"][k], v) for k, v in source["G"].state_dict().items())


@pytest.mark.slow
def test_wandb_logs_scalars_and_grids_offline_without_login(tmp_path, monkeypatch, one_thread):
    import wandb

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(tmp_path, ["logger=wandb", "total_kimg=0.016", "snapshot_kimg=0.008"])
    assert cfg.logger.wandb.offline is True
    run_train(cfg)
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb")) and len(list((run / "files" / "media" / "images").rglob("*.png"))) >= 2
    # Continued (the folder holds the run): the same W&B run id, kept in the folder's config.yaml.
    run_id = OmegaConf.load(tmp_path / "config.yaml").logger.wandb.id
    assert run.name.endswith(f"-{run_id}")
    wandb.finish()  # as when the first process ended
    run_train(compose_train(tmp_path, ["logger=wandb", "total_kimg=0.024", "snapshot_kimg=0.008"]))
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(path.name.endswith(f"-{run_id}") for path in runs)


@pytest.mark.slow
def test_cli_sweep_and_one_line_errors(tmp_path):
    sweep = subprocess.run([sys.executable, str(REPO / "train.py"), "-m", "model.gamma=1,10", *TINY,
                            "total_kimg=0.016", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})  # tiny networks: threads only spin
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    gammas = sorted(OmegaConf.load(tmp_path / "sweep" / str(i) / "config.yaml").model.gamma for i in range(2))
    assert gammas == [1.0, 10.0]

    missing = subprocess.run([sys.executable, str(REPO / "train.py"), "dataset=folder",
                              f"dataset.path={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run'}"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert missing.returncode == 2
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nowhere" in errors[0] and "Traceback" not in missing.stderr

    typo = subprocess.run([sys.executable, str(REPO / "train.py"), "model.r1_gama=1"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert typo.returncode != 0 and "r1_gama" in typo.stderr
