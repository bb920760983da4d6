"""Every config group composes; model presets resolve to the official table; bad keys fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from stylefuse.cli import CONF_DIR
from tests.helpers import compose_cfg


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def compose_train(overrides: list[str]):
    return compose_cfg("train", overrides)


GROUPS = ["dataset", "model", "loss", "augment", "augment/pipe", "trainer", "logger", "callbacks", "experiment"]


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_train_group_option_composes(group, option):
    extra = ["augment.p=0.2"] if (group, option) == ("augment", "fixed") else []
    cfg = compose_train([f"{group}={option}", *extra])
    assert cfg.task_name and cfg.total_kimg > 0


@pytest.mark.parametrize("name", ["project", "fuse", "generate", "style_mixing", "metrics"])
def test_primary_configs_of_the_other_jobs_compose(name):
    assert compose_cfg(name, []).task_name == name


def test_experiments_reproduce_the_paper_runs():
    for name, dataset in [("ffhq256_paper", "ffhq256"), ("lsun_cat_paper", "lsun_cat")]:
        cfg = compose_train([f"experiment={name}"])
        assert cfg.dataset == compose_train([f"dataset={dataset}"]).dataset
        assert cfg.model.name == "paper256" and cfg.trainer.devices == 2 and cfg.task_name == name
        assert cfg.total_kimg == 5000 and list(cfg.metrics) == ["fid50k_full"] and cfg.metrics_kimg == 200


def test_slurm_launcher_sends_one_task_per_gpu():
    cfg = compose_cfg("train", ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match="r1_gama"):
        compose_train(["model.r1_gama=1"])


def test_csv_and_tensorboard_loggers_instantiate(tmp_path):
    for option in ["csv", "tensorboard"]:
        cfg = compose_train([f"logger={option}", f"paths.output_dir={tmp_path}"])
        (logger,) = [instantiate(entry) for entry in cfg.logger.values()]
        logger.log_metrics({"loss/G": 1.0, "progress/kimg": 0.0}, step=0)
        logger.finalize("success")
    assert (Path(tmp_path) / "csv" / "metrics.csv").is_file()
