"""Start-up checks: every job's bad values are one line naming the key, what it takes and what it got; good configs
pass; every knob of the job configs is declared."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from stylefuse.cli import CONF_DIR
from stylefuse.config_checks import JOBS, check_config
from stylefuse.errors import ConfigError
from tests.helpers import compose_cfg

NET = "network=net.pkl"  # a value of the right kind; nothing is loaded by the checks


@functools.cache
def composed_groups(job: str, groups: tuple[str, ...]) -> DictConfig:
    return compose_cfg(job, list(groups))


def compose(job: str, overrides: list[str]) -> DictConfig:
    """`compose_cfg` for many configs in little time: one composition per choice of group options, the values set
    as Hydra converts them from the command line (YAML rules: `abc` is a string, `[0.5,3]` a list)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    is_group = [(CONF_DIR / override.key_or_group).is_dir() for override in parsed]
    cfg = copy.deepcopy(composed_groups(job, tuple(o.input_line for o, g in zip(parsed, is_group) if g)))
    for override, group in zip(parsed, is_group):
        if not group:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
    return cfg

# (job, overrides, the whole message)
BAD = [
    ("train", ["total_kimg=abc"], "total_kimg must be a positive number of kimg, got 'abc'"),
    ("train", ["total_kimg=-1"], "total_kimg must be a positive number of kimg, got -1"),
    ("train", ["snapshot_kimg=0"], "snapshot_kimg must be a positive number of kimg, got 0"),
    ("train", ["kimg_per_tick=true"], "kimg_per_tick must be a positive number of kimg, got true"),
    ("train", ["model.gamma=abc"], "model.gamma must be null or an R1 weight >= 0 such as 10, got 'abc'"),
    ("train", ["model.lrate=fast"], "model.lrate must be null or a positive learning rate such as 0.0025, got 'fast'"),
    ("train", ["seed=abc"], "seed must be a whole number in 0..2**32-1, got 'abc'"),
    ("train", ["seed=1.5"], "seed must be a whole number in 0..2**32-1, got 1.5"),
    ("train", ["seed=-1"], "seed must be a whole number in 0..2**32-1, got -1"),
    ("train", ["trainer.devices=abc"], "trainer.devices must be a number of devices, -1 (all GPUs), auto or a list of "
                                       "GPU indices such as [0,1], got 'abc'"),
    ("train", ["trainer=cpu", "trainer.devices=[0,1]"],
     "trainer.devices=[0, 1] selects GPUs, but this run trains on the CPU; give a number of processes such as "
     "trainer.devices=1"),
    ("train", ["dataset=folder"], "dataset.path must be set to a folder or zip of images: add dataset.path=... to the "
                                  "command line"),
    ("train", ["dataset.resolution=100"], "dataset.resolution must be null or a power-of-two size >= 4 such as 256, "
                                          "got 100"),
    ("train", ["augment=fixed"], "augment.p must be set to an augmentation probability in [0, 1]: add augment.p=... "
                                 "to the command line"),
    ("train", ["augment=fixed", "augment.p=2"], "augment.p must be an augmentation probability in [0, 1], got 2"),
    ("train", ["augment.pipe.xflip=-1"], "augment.pipe.xflip must be a number >= 0, got -1"),
    ("train", ["augment.pipe.imgfilter_bands=[1,1]"], "augment.pipe.imgfilter_bands must be a list of 4 numbers >= 0, "
                                                      "got [1, 1]"),
    ("train", ["grid_size=[8]"], "grid_size must be null or [columns, rows], two positive whole numbers, got [8]"),
    ("train", ["metrics=fid50k_full"], "metrics must be a list of metric names such as [fid50k_full], got "
                                       "'fid50k_full'"),
    ("train", ["metrics=[fid]"], "unknown metric fid; choose from fid50k_full, kid50k_full, pr50k3_full, ppl2_wend, "
                                 "is50k, fid50k, kid50k, pr50k3, ppl_zfull, ppl_wfull, ppl_zend, ppl_wend, fid_toy, "
                                 "coverage_toy"),
    ("train", ["model.fp16_dtype=float8"], "model.fp16_dtype must be one of float16, bfloat16, got 'float8'"),
    ("train", ["model.compile=yes"], "model.compile must be auto, true or false, got 'yes'"),
    ("train", ["num_threads=0"], "num_threads must be null or a positive whole number, got 0"),
    ("train", ["loss.G_reg_interval=0"], "loss.G_reg_interval must be a positive whole number, got 0"),
    ("train", ["optim.betas=[0,1]"], "optim.betas must be [beta1, beta2], two numbers in [0, 1), got [0, 1]"),
    ("train", ["cudnn_benchmark=yes"], "cudnn_benchmark must be true or false, got 'yes'"),
    ("train", ["callbacks.snapshot.noise_mode=foo"], "callbacks.snapshot.noise_mode must be one of random, const, "
                                                     "none, got 'foo'"),
    ("project", [NET], "target must be set to an image file or a folder of images: add target=... to the command line"),
    ("project", [NET, "target=a.png", "batch_size=0"], "batch_size must be a positive whole number, got 0"),
    ("project", [NET, "target=a.png", "projector.space=z"], "projector.space must be one of w, w+, got 'z'"),
    ("project", [NET, "target=a.png", "projector=w_fast", "projector.stages=[64,0.5]"], "projector.stages must be "
     "null or a list of [resolution or null, share of the steps] pairs, e.g. [[64,0.5],[null,0.5]], got [64, 0.5]"),
    ("project", [NET, "target=a.png", "projector=w_fast", "projector.precision=float16"], "projector.precision must "
     "be one of float32, bfloat16, got 'float16'"),
    ("project", [NET, "target=a.png", "projector.lr_rampup_length=0"], "projector.lr_rampup_length must be a fraction "
                                                                       "of the steps in (0, 1], got 0"),
    ("fuse", [], "network must be set to a network pickle (.pkl), a stylefuse snapshot or checkpoint (.ckpt), a URL "
                 "or a pretrained name such as ffhq: add network=... to the command line"),
    ("fuse", [NET, "image1=seed:1"], "image2 must be set to an image file, a projected_w.npz or seed:<number>: add "
                                     "image2=... to the command line"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "strength=abc"], "strength must be a number in [0, 1] (0 keeps "
                                                                      "image 1, 1 takes image 2's layers), got 'abc'"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "ranges=[0.5,3]"], "ranges must be a preset name (ranges=paper), "
                                                                        "one pair of layers [start, end] or a list of "
                                                                        "pairs [[0,6],[8,14]], got [0.5, 3]"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "ranges=papr"], "unknown ranges preset 'papr': use one of "
                                                                     "['paper', 'styles'] or explicit pairs such as "
                                                                     "ranges=[[0,6],[4,10]]"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "trunc=abc"], "trunc must be a number (the truncation psi; 1 = "
                                                                   "none), got 'abc'"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "noise_mode=foo"], "noise_mode must be one of random, const, "
                                                                        "none, got 'foo'"),
    ("fuse", [NET, "image1=seed:1", "image2=seed:2", "sweep=ranges"], "sweep must be one of none, range, strength, "
                                                                      "got 'ranges'"),
    ("generate", [], "network must be set to a network pickle (.pkl), a stylefuse snapshot or checkpoint (.ckpt), a "
                     "URL or a pretrained name such as ffhq: add network=... to the command line"),
    ("generate", [NET], "seeds is not set: give a list [0,1,2], a range 0-7 or a quoted list '0,1,2'"),
    ("generate", [NET, "seeds=abc"], "seeds must be null or a seed list: [0,1,2], a range 0-7 or a quoted list "
                                     "'0,1,2', got 'abc'"),
    ("generate", [NET, "seeds=1", "class_idx=-1"], "class_idx must be null or a class index >= 0, got -1"),
    ("generate", [NET, "seeds=1", "device=gpu"], "device must be auto, cpu, cuda or cuda:<index>, got 'gpu'"),
    ("style_mixing", [NET, "rows=1-2"], "cols must be set to a seed list: [0,1,2], a range 0-7 or a quoted list "
                                        "'0,1,2': add cols=... to the command line"),
    ("style_mixing", [NET, "rows=1", "cols=2", "styles=x"], "styles must be a list of layer indices: [0,1,2], a range "
                                                            "0-6 or a quoted list '0,1,2', got 'x'"),
    ("metrics", [], "network must be set to a network pickle (.pkl), a stylefuse snapshot or checkpoint (.ckpt), a "
                    "URL or a pretrained name such as ffhq: add network=... to the command line"),
    ("metrics", [NET, "metrics=[fidd]"], "unknown metric fidd; choose from fid50k_full, kid50k_full, pr50k3_full, "
                                         "ppl2_wend, is50k, fid50k, kid50k, pr50k3, ppl_zfull, ppl_wfull, ppl_zend, "
                                         "ppl_wend, fid_toy, coverage_toy"),
    ("metrics", [NET, "num_gen=0"], "num_gen must be null or a positive whole number, got 0"),
    ("metrics", [NET, "batch_size=abc"], "batch_size must be a positive whole number, got 'abc'"),
    ("probe", ["epochs=0", "out=p.pt"], "epochs must be a positive whole number, got 0"),
    ("probe", ["resolution=30", "out=p.pt"], "resolution must be null or a power-of-two size >= 4 such as 256, "
                                             "got 30"),
    ("eval_fusion", ["strengths=[0,2]"], "strengths must be a list of strengths in [0, 1], got [0, 2]"),
    ("eval_fusion", ["inputs.num_pairs=0"], "inputs.num_pairs must be a positive whole number, got 0"),
    ("eval_fusion", ["presets=[paperr]"], "unknown ranges preset 'paperr': use one of ['paper', 'styles'] or explicit "
                                         "pairs such as ranges=[[0,6],[4,10]]"),
]


@pytest.mark.parametrize("job, overrides, message", BAD, ids=[" ".join([job, *o]) for job, o, _ in BAD])
def test_bad_values_are_one_line(job, overrides, message):
    with pytest.raises(ConfigError) as err:
        check_config(job, compose(job, overrides))
    assert str(err.value) == message


def test_every_job_is_declared():
    assert sorted(JOBS) == sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def test_choices_are_the_library_ones():
    from stylefuse.projection.fast import PRECISIONS
    from stylefuse.projection.projector import SPACES, STARTS

    assert JOBS["project"].knobs["projector.space"].what == f"one of {', '.join(SPACES)}"
    assert JOBS["project"].knobs["projector.start"].what == f"one of {', '.join(STARTS)}"
    assert JOBS["project"].knobs["projector.precision"].what == f"one of {', '.join(PRECISIONS)}"


def test_hydra_composition_gives_the_same_values():
    overrides = ["total_kimg=abc", "model.gamma=1e3", "grid_size=[0.5,3]", "dataset=folder", "seed=null"]
    assert compose("train", overrides) == compose_cfg("train", overrides)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_gpu_trainer_without_gpu_is_one_line():
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=gpu needs a CUDA GPU, and torch finds none .*; "
                                          r"train on the CPU with trainer=cpu$"):
        check_config("train", compose("train", ["trainer=gpu"]))


GOOD = {
    "train": [],
    "project": [NET, "target=a.png"],
    "fuse": [NET, "image1=a.png", "image2=seed:2", "ranges=[[0,3],[]]", "strength=0.5", "sweep=strength"],
    "generate": [NET, "seeds=0-7", "trunc=0.7", "class_idx=3"],
    "style_mixing": [NET, "rows=[85,100]", "cols='1,2'"],
    "metrics": [NET],  # dataset.path left unset: the network file's training data
    "export": [NET, "format=torchscript", "part=synthesis", "truncation_cutoff=8", "out=g.pt"],
    "probe": ["num_train=100", "epochs=1", "out=p.pt"],
    "eval_fusion": ["window=null", "strength_preset=null"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def test_every_train_option_passes():
    # Every option of every group at least once, in as few configs as there are options in the largest group.
    groups = {group: options(group) for group in ("dataset", "model", "augment", "augment/pipe")}
    groups["augment"].remove("noaug")  # (it has no pipe to choose)
    extra = {"dataset=folder": ["dataset.path=data"], "augment=fixed": ["augment.p=0.2"]}
    for i in range(max(len(choices) for choices in groups.values())):
        choice = [f"{group}={choices[i % len(choices)]}" for group, choices in groups.items()]
        check_config("train", compose("train", [*choice, *(x for c in choice for x in extra.get(c, []))]))
    check_config("train", compose("train", ["augment=noaug"]))
    for experiment in options("experiment"):
        cfg = compose("train", [f"experiment={experiment}"])
        if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():  # the paper runs
            with pytest.raises(ConfigError, match="needs a CUDA GPU"):
                check_config("train", cfg)
            cfg = compose("train", [f"experiment={experiment}", "trainer=cpu"])
        check_config("train", cfg)


# Knobs passed on unchecked: Hydra's and the run's bookkeeping, the arguments of classes that check them themselves
# (Lightning's Trainer, the loggers: their refusals are one line through stylefuse.cli), `_target_` paths, the
# fusion presets (checked when a preset is used) and interpolations of declared knobs.
PASSED_ON = ("task_name", "paths.", "logger.", "fusion.")
TRAINER_KNOBS = ("trainer.accelerator", "trainer.devices", "trainer.num_nodes")


def leaves(node: DictConfig, prefix: str = "") -> dict[str, bool]:
    """Every knob of a config -> whether its value is an interpolation (`${...}`); `_target_` paths left out."""
    keys = {}
    for name in node.keys():
        child, key = node._get_node(name), f"{prefix}{name}"
        if name == "_target_":
            continue
        if isinstance(child, DictConfig) and not child._is_interpolation() and not child._is_missing() \
                and not child._is_none():
            keys.update(leaves(child, f"{key}."))
        else:
            keys[key] = child._is_interpolation()
    return keys


# Configs between them holding every knob of a job (group options have knobs of their own).
PROJECTORS = ("w_fast", "wplus_reg", "pti")  # with the W knobs, every projector knob is in one of these
VARIANTS = {**{job: [overrides] for job, overrides in GOOD.items()},
            "train": [[], ["dataset=lsun_cat", "augment=fixed"], ["dataset=ffhq256", "augment=noaug"]],
            "project": [GOOD["project"], *([*GOOD["project"], f"projector={name}"] for name in PROJECTORS)],
            "fuse": [GOOD["fuse"], *([*GOOD["fuse"], f"projector={name}"] for name in PROJECTORS)],
            "eval_fusion": [GOOD["eval_fusion"], ["inputs=projected"],
                            *(["inputs=projected", f"projector={name}"] for name in PROJECTORS)],
            "metrics": [[NET], [NET, "dataset=lsun_cat"], [NET, "dataset=toy"], [NET, "dataset=ffhq256"]]}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_knob_is_declared_and_exists(job):
    knobs = JOBS[job].knobs
    groups = {key[:-2] for key in knobs if key.endswith(".*")}
    present = {key: interpolated for overrides in VARIANTS[job]
               for key, interpolated in leaves(compose(job, overrides)).items()}
    undeclared = {key for key, interpolated in present.items() if key not in knobs and not interpolated
                  and key.rpartition(".")[0] not in groups and not key.startswith(PASSED_ON)
                  and not (key.startswith("trainer.") and key not in TRAINER_KNOBS)}
    assert undeclared == set()
    # A declared knob that no config has is a leftover, or a typo in the declaration.
    assert {key for key in knobs if not key.endswith(".*")} - set(present) == set()
