"""Every config group composes; model presets resolve to the official table; bad keys fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from stylefuse.cli import CONF_DIR
from stylefuse.errors import DatasetError
from stylefuse.nn import Discriminator, Generator
from stylefuse.training.builders import network_kwargs, resolve_model_spec
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
    if group == "augment/pipe":
        assert cfg.augment.pipe._target_.endswith("AugmentPipe")


@pytest.mark.parametrize("name", ["project", "fuse", "generate", "style_mixing", "metrics"])
def test_primary_configs_of_the_other_jobs_compose(name):
    assert compose_cfg(name, []).task_name == name


def test_datasets_instantiate_and_report_missing_data_when_used(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFUSE_DATA", str(tmp_path))
    for option in options("dataset"):
        cfg = compose_train([f"dataset={option}"] + ([f"dataset.path={tmp_path / 'none'}"] if option == "folder"
                                                      else []))
        datamodule = instantiate(cfg.dataset, batch_size=16, seed=0)
        if option == "toy":
            assert datamodule.dataset.resolution == 32 and datamodule.dataset.num_channels == 3
        else:
            with pytest.raises(DatasetError, match="not found") as err:
                _ = datamodule.dataset
            assert "\n" not in str(err.value)


@pytest.mark.parametrize("res, gpus, batch, batch_gpu, mbstd, gamma, ema", [  # spec 1.2 derived values
    (32, 1, 32, 32, 4, 0.0064, 10), (64, 1, 32, 32, 4, 0.0256, 10), (128, 2, 64, 32, 4, 0.0512, 20),
    (256, 1, 16, 16, 4, 0.8192, 5), (256, 2, 32, 16, 4, 0.4096, 10), (256, 8, 64, 8, 4, 0.2048, 20),
    (512, 4, 32, 8, 4, 1.6384, 10), (1024, 8, 32, 4, 4, 6.5536, 10),
])
def test_auto_preset_matches_the_official_formulas(res, gpus, batch, batch_gpu, mbstd, gamma, ema):
    spec = resolve_model_spec(compose_train(["model=auto"]).model, res, gpus)
    assert (spec["batch_size"], spec["batch_gpu"], spec["mbstd_group"]) == (batch, batch_gpu, mbstd)
    assert spec["gamma"] == pytest.approx(gamma) and spec["ema_kimg"] == pytest.approx(ema)
    assert spec["channel_base"] == (32768 if res >= 512 else 16384)
    assert spec["lrate"] == (0.002 if res >= 1024 else 0.0025) and spec["map_layers"] == 2


def test_paper256_preset_builds_the_official_networks():
    cfg = compose_train(["model=paper256"])
    spec = resolve_model_spec(cfg.model, 256, gpus=2)
    assert (spec["batch_size"], spec["batch_gpu"], spec["gamma"], spec["ema_kimg"]) == (64, 8, 1, 20)
    G_kwargs, D_kwargs = network_kwargs(spec, resolution=256, channels=3, c_dim=0)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(Generator(**G_kwargs)) == 24_767_458 and count(Discriminator(**D_kwargs)) == 24_001_089
    assert cfg.loss.r1_gamma == 1 and cfg.loss.pl_weight == 2 and cfg.loss.G_reg_interval == 4


def test_cifar_preset_turns_off_path_length_and_mixing():
    cfg = compose_train(["model=cifar"])
    spec = resolve_model_spec(cfg.model, 32, gpus=2)
    assert spec["d_architecture"] == "orig" and cfg.loss.pl_weight == 0 and cfg.loss.style_mixing_prob == 0
    assert spec["batch_gpu"] == 32 and spec["mbstd_group"] == 32


def test_fp32_switch_disables_fp16_and_clamping():
    spec = resolve_model_spec(compose_train(["model=stylegan2", "model.fp32=true"]).model, 1024, gpus=1)
    assert spec["num_fp16_res"] == 0 and spec["conv_clamp"] is None


def test_experiments_reproduce_the_paper_runs():
    for name, dataset in [("ffhq256_paper", "ffhq256"), ("lsun_cat_paper", "lsun_cat")]:
        cfg = compose_train([f"experiment={name}"])
        assert cfg.dataset.name == dataset and cfg.model.name == "paper256" and cfg.trainer.devices == 2
        assert cfg.total_kimg == 5000 and list(cfg.metrics) == ["fid50k_full"] and cfg.metrics_kimg == 200


def test_slurm_launcher_sends_one_task_per_gpu():
    cfg = compose_cfg("train", ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4


def test_unknown_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match="r1_gama"):
        compose_train(["loss.r1_gama=1"])


def test_csv_and_tensorboard_loggers_instantiate(tmp_path):
    for option in ["csv", "tensorboard"]:
        cfg = compose_train([f"logger={option}", f"paths.output_dir={tmp_path}"])
        (logger,) = [instantiate(entry) for entry in cfg.logger.values()]
        logger.log_metrics({"loss/G": 1.0, "progress/kimg": 0.0}, step=0)
        logger.finalize("success")
    assert (Path(tmp_path) / "csv" / "metrics.csv").is_file()
