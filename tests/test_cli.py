"""The job convention: Hydra's errors in one line, no run folder left by a job that failed before doing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import CompactHydraException, InstantiationException
from hydra.utils import instantiate

from stylefuse.cli import RunFolders, hydra_error_line, instantiation_error_line, make_output_folder, remove_folder
from stylefuse.errors import ConfigError
from tests.helpers import assert_one_line, compose_cfg

REPO = Path(__file__).resolve().parents[1]


def composition_error(job: str, overrides: list[str]) -> CompactHydraException:
    with pytest.raises(CompactHydraException) as err:
        compose_cfg(job, overrides)
    return err.value


@pytest.mark.parametrize("override, line", [
    ("model.r1_gama=1", "model.r1_gama is not a key of this config; did you mean model.gamma? (to add a new key, "
                        "write +model.r1_gama=...)"),
    # Knobs that moved to the model presets are found by their name.
    ("loss.r1_gamma=1", "loss.r1_gamma is not a key of this config; did you mean model.gamma? (to add a new key, "
                        "write +loss.r1_gamma=...)"),
    ("optim.lr=fast", "optim.lr is not a key of this config; did you mean model.lrate? (to add a new key, write "
                      "+optim.lr=...)"),
    ("qqqq=1", "qqqq is not a key of this config (to add a new key, write +qqqq=...)"),
    ("dataset=fodler", "dataset=fodler is not an option of dataset: use one of ffhq256, folder, lsun_cat, toy"),
    ("grid_size=[8,4", "no viable alternative at input '[8,4'; See https://hydra.cc/docs/1.2/advanced/"
                       "override_grammar/basic for details"),
])
def test_hydra_errors_are_one_line(override, line):
    assert hydra_error_line(composition_error("train", [override])) == line


def test_refused_class_arguments_are_one_line():
    with pytest.raises(InstantiationException) as err:
        instantiate({"speed": {"_target_": "fractions.Fraction", "numerator": "fast"}})
    assert instantiation_error_line(err.value) == ("speed (fractions.Fraction) does not accept its config: Invalid "
                                                   "literal for Fraction: 'fast'; fix the value on the command line")


def test_remove_folder_keeps_what_existed_before(tmp_path, monkeypatch):
    monkeypatch.setattr(RunFolders, "existing", set())
    monkeypatch.setattr(RunFolders, "made", set())
    hydra_files = {"train.log", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}

    def fill(folder: Path) -> Path:
        for name in hydra_files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("x")
        return folder

    given = tmp_path / "given"
    given.mkdir()
    RunFolders.note(str(given))
    RunFolders.note(str(tmp_path / "new" / "run"))
    remove_folder(fill(given), hydra_files)
    assert given.is_dir() and list(given.iterdir()) == []  # emptied, not removed
    remove_folder(fill(tmp_path / "new" / "run"), hydra_files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["given"]  # the run folder and the parent made for it


def run_job(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def assert_one_error_line(done: subprocess.CompletedProcess, line: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: {line}"


@pytest.mark.slow
def test_bad_value_leaves_no_run_folder(tmp_path):
    done = run_job([str(REPO / "train.py"), "total_kimg=abc"], tmp_path)
    assert_one_error_line(done, "total_kimg must be a positive number of kimg, got 'abc'")
    assert list(tmp_path.iterdir()) == []  # not even outputs/train/


@pytest.mark.slow
def test_failed_sweep_leaves_no_sweep_folder(tmp_path):
    done = run_job([str(REPO / "train.py"), "-m", "total_kimg=abc,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                   tmp_path)
    assert done.returncode == 2 and "error: total_kimg must be a positive number of kimg, got 'abc'" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_given_folder_with_results_is_kept(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "figure.png").write_bytes(b"results")
    done = run_job([str(REPO / "fuse.py"), f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert_one_error_line(done, "network must be set to a network pickle (.pkl), a stylefuse snapshot or checkpoint "
                                "(.ckpt), a URL or a pretrained name such as ffhq: add network=... to the command line")
    assert (tmp_path / "run" / "figure.png").read_bytes() == b"results"


@pytest.mark.slow
def test_run_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("in the way")
    done = run_job(["-m", "stylefuse.generate", "network=net.pkl", "seeds=1", f"hydra.run.dir={tmp_path}/file/run"],
                   tmp_path)
    assert_one_error_line(done, f"cannot create the run folder {tmp_path}/file/run (Not a directory); run from a "
                                "folder you can write to, or choose one with hydra.run.dir=... (hydra.sweep.dir=... "
                                "with -m)")


def test_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("in the way")
    cfg = compose_cfg("generate", ["network=net.pkl", "seeds=1", f"paths.output_dir={tmp_path}/file/out"])
    with pytest.raises(ConfigError) as err:
        make_output_folder(cfg)
    assert_one_line(err, f"cannot create the output folder {tmp_path}/file/out (Not a directory); choose a folder "
                         "you can write to with paths.output_dir=...")
    make_output_folder(compose_cfg("generate", ["network=net.pkl", "seeds=1", f"paths.output_dir={tmp_path}/a/b"]))
    assert (tmp_path / "a" / "b").is_dir()
