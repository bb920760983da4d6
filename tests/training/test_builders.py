"""The builders: model presets resolved as the official train.py does, augment settings, the training set, checks."""

from __future__ import annotations

import pytest
import torch

from stylefuse.data import open_dataset
from stylefuse.errors import ConfigError
from stylefuse.nn import Discriminator, Generator
from stylefuse.training.builders import (
    augment_settings,
    build_module,
    check_batch,
    configure_backends,
    network_kwargs,
    resolve_model_spec,
)
from tests.helpers import compose_cfg


def compose_train(overrides: list[str]):
    return compose_cfg("train", overrides)


@pytest.mark.parametrize("res, gpus, batch, batch_gpu, mbstd, gamma, ema", [  # spec 1.2 derived values
    (32, 1, 32, 32, 4, 0.0064, 10), (64, 1, 32, 32, 4, 0.0256, 10), (128, 2, 64, 32, 4, 0.0512, 20),
    (256, 1, 16, 16, 4, 0.8192, 5), (256, 2, 32, 16, 4, 0.4096, 10), (256, 8, 64, 8, 4, 0.2048, 20),
    (512, 4, 32, 8, 4, 1.6384, 10), (1024, 8, 32, 4, 4, 6.5536, 10),
])
def test_auto_preset_matches_the_official_formulas(res, gpus, batch, batch_gpu, mbstd, gamma, ema):
    spec = resolve_model_spec(compose_train(["model=auto"]).model, res, gpus)
    assert (spec.batch_size, spec.batch_gpu, spec.mbstd_group) == (batch, batch_gpu, mbstd)
    assert spec.gamma == pytest.approx(gamma) and spec.ema_kimg == pytest.approx(ema)
    assert spec.channel_base == (32768 if res >= 512 else 16384)
    assert spec.lrate == (0.002 if res >= 1024 else 0.0025) and spec.map_layers == 2


def test_paper256_preset_builds_the_official_networks():
    cfg = compose_train(["model=paper256"])
    spec = resolve_model_spec(cfg.model, 256, gpus=2)
    assert (spec.batch_size, spec.batch_gpu, spec.gamma, spec.ema_kimg) == (64, 8, 1, 20)
    assert spec.pl_weight == 2 and spec.style_mixing_prob == 0.9 and cfg.loss.G_reg_interval == 4
    G_kwargs, D_kwargs = network_kwargs(spec, resolution=256, channels=3, c_dim=0)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(Generator(**G_kwargs)) == 24_767_458 and count(Discriminator(**D_kwargs)) == 24_001_089


def test_cifar_preset_turns_off_path_length_and_mixing():
    spec = resolve_model_spec(compose_train(["model=cifar"]).model, 32, gpus=2)
    assert spec.d_architecture == "orig" and spec.pl_weight == 0 and spec.style_mixing_prob == 0
    assert spec.batch_gpu == 32 and spec.mbstd_group == 32


def test_fp32_switch_disables_fp16_and_clamping():
    spec = resolve_model_spec(compose_train(["model=stylegan2", "model.fp32=true"]).model, 1024, gpus=1)
    assert spec.num_fp16_res == 0 and spec.conv_clamp is None


def test_precision_choice_is_checked():
    with pytest.raises(ConfigError, match="model.fp16_dtype must be float16 or bfloat16, got 'half'"):
        resolve_model_spec(compose_train(["model.fp16_dtype=half"]).model, 32, 1)


@pytest.mark.parametrize("preset", ["auto", "tiny", "cifar", "paper256", "paper512", "paper1024", "stylegan2"])
def test_compile_switch_composes_in_every_preset(preset):
    assert resolve_model_spec(compose_train([f"model={preset}"]).model, 256, 1).compile == "auto"
    for value, expected in [("true", True), ("false", False)]:
        spec = resolve_model_spec(compose_train([f"model={preset}", f"model.compile={value}"]).model, 256, 1)
        assert spec.compile is expected
    with pytest.raises(ConfigError, match="model.compile must be auto, true or false, got 'yes'"):
        resolve_model_spec(compose_train([f"model={preset}", "model.compile=yes"]).model, 256, 1)


def test_num_threads_knob():
    threads = torch.get_num_threads()
    try:
        configure_backends(True, False, compose_train(["num_threads=1"]).num_threads)
        assert torch.get_num_threads() == 1
        configure_backends(True, False, compose_train([]).num_threads)  # null: left as it is
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="num_threads must be at least 1, got 0"):
            configure_backends(True, False, 0)
    finally:
        torch.set_num_threads(threads)


def test_batch_checks_are_one_line():
    spec = resolve_model_spec(compose_train(["model=tiny", "model.batch_size=12", "model.batch_gpu=4"]).model, 32, 1)
    check_batch(spec, world_size=1)
    check_batch(spec, world_size=3)
    with pytest.raises(ConfigError, match="does not split into rounds of 4 on 2 device"):
        check_batch(spec, world_size=2)
    spec = resolve_model_spec(compose_train(["model=tiny", "model.batch_gpu=6", "model.batch_size=12"]).model, 32, 1)
    with pytest.raises(ConfigError, match="not divisible by the minibatch-std group 4"):
        check_batch(spec, world_size=1)


def test_ada_settings_and_the_transfer_speed():
    cfg = compose_train(["augment.initial_p=0.25"]).augment
    settings = augment_settings(cfg, transfer=False)
    assert settings.augment_p == 0.25 and settings.augment_kwargs["xflip"] == 1 and settings.augment_kwargs["hue"] == 1
    assert settings.augment_kwargs["imgfilter"] == 0 and settings.augment_kwargs["scale_std"] == 0.2
    assert settings.ada_kwargs == dict(mode="ada", target=0.6, interval=4, kimg=500)
    assert augment_settings(cfg, transfer=True).ada_kwargs["kimg"] == 100  # official --resume
    explicit = compose_train(["augment.kimg=250"]).augment
    assert augment_settings(explicit, transfer=True).ada_kwargs["kimg"] == 250  # the user's value wins


def test_fixed_and_noaug_settings():
    settings = augment_settings(compose_train(["augment=fixed", "augment.p=0.3", "augment/pipe=bgcfnc"]).augment, False)
    assert settings.augment_p == pytest.approx(0.3) and settings.augment_kwargs["cutout"] == 1
    assert settings.ada_kwargs == dict(mode="fixed")
    assert augment_settings(compose_train(["augment=fixed", "augment.p=0"]).augment, False).augment_kwargs is None
    noaug = augment_settings(compose_train(["augment=noaug"]).augment, False)
    assert noaug.augment_kwargs is None and noaug.ada_kwargs == dict(mode="noaug")


def test_augment_errors_are_one_line():
    with pytest.raises(ConfigError, match="augment=fixed needs the augmentation probability; add e.g. augment.p="):
        augment_settings(compose_train(["augment=fixed"]).augment, False)
    with pytest.raises(ConfigError, match="unknown augment mode 'adaptive'"):
        augment_settings(compose_train(["augment.mode=adaptive"]).augment, False)
    with pytest.raises(ConfigError, match="must be >= 0"):
        augment_settings(compose_train(["augment.initial_p=-0.1"]).augment, False)


def test_module_hyper_parameters_are_plain_values():
    cfg = compose_train(["model.batch_size=8", "model.channel_base=256", "model.channel_max=16", "model.z_dim=16",
                         "model.w_dim=16", "dataset.resolution=16", "dataset.num_images=16"])
    dataset, _ = open_dataset(cfg.dataset, seed=0)
    module = build_module(cfg, dataset, world_size=1, transfer=False)

    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and k != "_target_" and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (bool, int, float, str))

    assert plain(dict(module.hparams))
    assert module.hparams.augment_kwargs["xflip"] == 1 and module.ada.kimg == 500
    transferred = build_module(cfg, dataset, world_size=1, transfer=True)
    assert transferred.hparams.ema_rampup is None and transferred.hparams.ada_kwargs["kimg"] == 100
