"""Long runs you can trust: `python train.py` killed (kill -9) or stopped (SIGTERM) at any moment and resumed ends
bit-identical to the uninterrupted run; saves are whole; the run folder tells one continuous story.

The runs are real train.py processes with tiny settings; tests.training.crash ends them at chosen moments.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from stylefuse.errors import ConfigError, SaveError
from stylefuse.networks import load_network_pkl
from stylefuse.training.callbacks import KimgSchedule
from stylefuse.training.resume import newest_checkpoint, plan_start, trim_logs
from stylefuse.training.run import train as run_train
from stylefuse.utils.files import atomic_write
from tests.helpers import REPO, compose_cfg
from tests.training.crash import make_writable
from tests.training.test_run import TINY, compose_train

# 8 iterations of batch 8; ticks after iterations 1, 3, 5, 7, 8; snapshots after 1, 2, 4, 6, 8.
RESUME = [*TINY, "snapshot_kimg=0.016"]
TICKS = [0.008, 0.024, 0.04, 0.056, 0.064]
TAGS = ["000000.008", "000000.016", "000000.032", "000000.048", "000000.064"]
TIMING = ("timestamp", "timing/", "resources/")  # the statistics allowed to differ between two runs


def train_py(run_dir: Path, *overrides: str, crash: dict | None = None, env: dict | None = None,
             devices: int = 1) -> subprocess.CompletedProcess:
    """`python train.py` in its own session (a crash kills its whole process group, never the test)."""
    args = [sys.executable, str(REPO / "train.py"), *RESUME, f"hydra.run.dir={run_dir}", *overrides]
    if devices > 1:
        args.append("trainer=ddp_cpu")
    if crash is not None:
        args.append("+callbacks.crash={" + ",".join(f"{k}:{v}" for k, v in
                                                    {"_target_": "tests.training.crash.Crash", **crash}.items()) + "}")
    # One thread: on a busy machine OpenMP's spinning threads cost tiny networks 20x the CPU time.
    return subprocess.run(args, capture_output=True, text=True, timeout=900, start_new_session=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def nimg(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["state_dict"]["cur_nimg"])


def tensors(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from tensors(item, f"{prefix}{key}.")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from tensors(item, f"{prefix}{i}.")
    elif isinstance(value, torch.Tensor):
        yield prefix.rstrip("."), value


def max_abs_difference(a: Path, b: Path) -> dict[str, float]:
    """Per part of two training checkpoints (weights and buffers, Adam states, per-rank RNG and accumulators, the
    latent sampler, the data position): the largest |difference| of any value, NaN equal to NaN."""
    ca, cb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert ca["ImageDataModule"] == cb["ImageDataModule"]
    worst = {}
    for part in ("state_dict", "optimizer_states", "rank_states", "phase_input_sampler"):
        ta, tb = dict(tensors(ca[part])), dict(tensors(cb[part]))
        assert ta.keys() == tb.keys(), part
        worst[part] = max((x.double() - y.double()).abs().nan_to_num().max().item() if x.numel() else 0.0
                          for x, y in ((ta[k], tb[k]) for k in ta))
        assert all(torch.equal(ta[k].nan_to_num(), tb[k].nan_to_num()) for k in ta), part
    return worst


def stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith(TIMING)} for row in rows]


def csv_kimg(run_dir: Path) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [float(row["progress/kimg"]) for row in csv.DictReader(f)]


def temp_files(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file() and ".tmp-" in p.name]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    done = train_py(run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture
def other_filesystem_tmpdir(tmp_path):
    """A $TMPDIR on another filesystem than the run folder (tmpfs), as on clusters with NFS outputs."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's folder")
    folder = Path(tempfile.mkdtemp(dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_killed_stopped_and_failed_runs_resume_bit_identical(reference, tmp_path, other_filesystem_tmpdir):
    run, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt"
    # kill -9 between the G and D steps of iteration 6 (between the ticks of iterations 5 and 7): the checkpoint of
    # iteration 4 remains, and the tick of iteration 5 was logged after it.
    killed = train_py(run, crash=dict(at="mid_iteration", iteration=5))
    assert killed.returncode == -9 and nimg(last) == 32 and [r["kimg"] for r in stats(run)][-1] == 0.04

    # SIGTERM during iteration 6 (resume=auto finds the folder's checkpoint): a checkpoint after it, a clean exit.
    stopped = train_py(run, "resume=auto", crash=dict(at="iteration_end", iteration=5, send="SIGTERM"))
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert "stopped early" in stopped.stdout and nimg(last) == 40

    # kill -9 halfway through writing the snapshot checkpoint of iteration 6, $TMPDIR on another filesystem.
    tmpdir = other_filesystem_tmpdir
    killed = train_py(run, crash=dict(at="save", save=1), env={"TMPDIR": str(tmpdir)})
    assert killed.returncode == -9 and nimg(last) == 40  # the previous checkpoint, whole
    assert [p.name.split(".tmp-")[0] for p in temp_files(run)] == [f".snapshot-{TAGS[3]}.ckpt"]  # beside it
    assert not [p for p in tmpdir.rglob("*") if p.is_file()]  # nothing went through $TMPDIR

    # The checkpoint folder stops accepting files after iteration 7: the last snapshot fails, the run stops.
    try:
        failed = train_py(run, crash=dict(at="readonly", iteration=7))
    finally:
        make_writable(run / "checkpoints")
    assert failed.returncode == 2, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot write {run}/checkpoints/snapshot-{TAGS[4]}.ckpt" in errors[0]
    assert "Traceback" not in failed.stderr and nimg(last) == 48 and not temp_files(run)

    finished = train_py(run)
    assert finished.returncode == 0, finished.stderr[-3000:]
    worst = max_abs_difference(reference / "checkpoints" / "last.ckpt", last)
    assert worst == {"state_dict": 0.0, "optimizer_states": 0.0, "rank_states": 0.0, "phase_input_sampler": 0.0}
    ours, theirs = load_network_pkl(str(run / f"network-snapshot-{TAGS[-1]}.pt")), \
        load_network_pkl(str(reference / f"network-snapshot-{TAGS[-1]}.pt"))
    for name in ("G", "D", "G_ema"):
        for (key, a), b in zip(ours[name].state_dict().items(), theirs[name].state_dict().values()):
            assert torch.equal(a, b), (name, key)
    # One continuous history: the same ticks, tick numbers and statistics; the CSV too.
    assert [round(r["kimg"], 3) for r in stats(run)] == [round(r["kimg"], 3) for r in stats(reference)] == TICKS
    assert without_timing(stats(run)) == without_timing(stats(reference))
    assert [r["progress/tick"] for r in stats(run)] == [0, 1, 2, 3, 4]
    assert csv_kimg(run) == csv_kimg(reference) == TICKS
    assert (run / "figure4.png").is_file() and not temp_files(run)


def test_sub_kimg_snapshots_keep_distinct_files(reference):
    for tag in TAGS:
        for name in (f"fakes{tag}.png", f"network-snapshot-{tag}.pt", f"checkpoints/snapshot-{tag}.ckpt"):
            assert (reference / name).is_file(), name
    assert len(list(reference.glob("network-snapshot-*.pt"))) == len(TAGS)
    first, second = (load_network_pkl(str(reference / f"network-snapshot-{tag}.pt"))["G_ema"] for tag in TAGS[1:3])
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert nimg(reference / "checkpoints" / f"snapshot-{TAGS[1]}.ckpt") == 16


def test_finished_run_trains_nothing_and_other_architectures_are_refused(reference, tmp_path, capsys):
    last = reference / "checkpoints" / "last.ckpt"
    for total in ("0.064", "0.032"):
        result = run_train(compose_train(tmp_path / "again", [f"resume={last}", f"total_kimg={total}"]))
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"Nothing to train: {last} is at 0.064 kimg, total_kimg={float(total):g}")
        assert result["kimg"] == 0.064 and result["metrics"]["progress/tick"] == 4
    with pytest.raises(ConfigError) as err:
        run_train(compose_train(tmp_path / "other", [f"resume={last}", "model.channel_base=512", "model.z_dim=32"]))
    message = str(err.value)
    assert "\n" not in message and "G_kwargs.z_dim 16 (config 32)" in message
    assert "G_kwargs.synthesis_kwargs.channel_base 256 (config 512)" in message
    assert "resume with model.channel_base=256 model.z_dim=16" in message


def test_resume_auto_picks_the_newest_checkpoint_and_a_run_folder_is_one_run(reference, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    assert newest_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    (run / "checkpoints" / "last.ckpt").unlink()
    (run / "checkpoints" / f"snapshot-{TAGS[-1]}.ckpt").unlink()
    assert newest_checkpoint(run) == run / "checkpoints" / f"snapshot-{TAGS[-2]}.ckpt"
    assert plan_start("auto", run).checkpoint == run / "checkpoints" / f"snapshot-{TAGS[-2]}.ckpt"
    # Starting again in a folder that holds a run continues it, also with the network the run started from.
    assert plan_start(str(reference / f"network-snapshot-{TAGS[0]}.pt"), run).checkpoint is not None
    assert plan_start("auto", tmp_path / "fresh").checkpoint is None
    with pytest.raises(ConfigError, match="already holds a run"):
        plan_start(str(reference / "checkpoints" / "last.ckpt"), run)


def test_resume_continues_in_the_checkpoints_run_folder(reference):
    resumed = compose_cfg("train", [f"resume={reference / 'checkpoints' / 'last.ckpt'}"], return_hydra_config=True)
    assert resumed.hydra.run.dir == str(reference)
    fresh = compose_cfg("train", [f"resume={reference / f'network-snapshot-{TAGS[0]}.pt'}"], return_hydra_config=True)
    assert fresh.hydra.run.dir.startswith("outputs/train/")


def test_transfer_learning_settings_survive_a_resume(reference, tmp_path, one_thread):
    network = reference / f"network-snapshot-{TAGS[0]}.pt"
    run = tmp_path / "transfer"
    run_train(compose_train(run, [f"resume={network}", "augment.kimg=null", "total_kimg=0.016"]))
    seen = {}

    class Inspect(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.update(ema_rampup=pl_module.hparams.ema_rampup, ada_kimg=pl_module.ada.kimg,
                        nimg=int(pl_module.cur_nimg))

    # The same command line again (as a requeued job): the folder's checkpoint continues, transfer settings kept.
    run_train(compose_train(run, [f"resume={network}", "augment.kimg=null", "total_kimg=0.024"]), [Inspect()])
    assert seen == {"ema_rampup": None, "ada_kimg": 100.0, "nimg": 16}
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hparams["ema_rampup"] is None and hparams["ada_kwargs"]["kimg"] == 100


def test_atomic_write_keeps_the_previous_file_when_a_write_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"good")

    def refuse(tmp):
        raise SaveError("damaged")

    def half_then_fail(tmp: Path):
        tmp.write_bytes(b"ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(SaveError, match="damaged"):
        atomic_write(path, lambda tmp: tmp.write_bytes(b"bad"), verify=refuse)
    with pytest.raises(SaveError) as err:
        atomic_write(path, half_then_fail)
    assert str(err.value).startswith(f"cannot write {path} (No space left on device)")
    assert path.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_schedules_resume_where_they_fired_also_with_another_interval():
    schedule = KimgSchedule(0.016)
    assert [schedule.due(kimg, False) for kimg in (0.008, 0.016, 0.024, 0.032)] == [True, True, False, True]
    resumed = KimgSchedule(0.016)
    resumed.load_state_dict(schedule.state_dict())
    assert [resumed.due(kimg, False) for kimg in (0.04, 0.048)] == [False, True]
    longer = KimgSchedule(1.0)  # resumed with snapshot_kimg=1
    longer.load_state_dict(schedule.state_dict())
    assert [longer.due(kimg, False) for kimg in (0.04, 0.5, 1.0)] == [False, False, True]


def test_trim_logs_cuts_back_to_the_checkpoint(tmp_path):
    rows = [{"kimg": k, "loss/G": 1.0} for k in (0.008, 0.024, 0.04)]
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kimg": 0.05')  # cut short
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("progress/kimg,step\n0.008,2\n0.024,8\n0.04,14\n")
    (tmp_path / ".last.ckpt.tmp-123.ckpt").write_bytes(b"half")
    trim_logs(tmp_path, nimg=24)
    assert [json.loads(line)["kimg"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()] == [0.008, 0.024]
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == ["progress/kimg,step", "0.008,2", "0.024,8"]
    assert not (tmp_path / ".last.ckpt.tmp-123.ckpt").exists()
    trim_logs(tmp_path, nimg=None)  # a new run in a folder whose first attempt died before any checkpoint
    assert (tmp_path / "stats.jsonl").read_text() == ""


@pytest.mark.slow
def test_ddp_cpu_kill_and_signal_resume_bit_identical(tmp_path):
    reference, run = tmp_path / "uninterrupted", tmp_path / "run"
    done = train_py(reference, devices=2)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (reference / "debug.log").read_text()  # the job's log (experiment=debug names the job): from rank 0
    assert sum("][INFO] - tick " in line for line in log.splitlines()) == len(TICKS)
    assert f"network {reference}/network-snapshot-{TAGS[-1]}.pt" in done.stdout.splitlines()[-1]

    killed = train_py(run, devices=2, crash=dict(at="mid_iteration", iteration=3))
    assert killed.returncode == -9 and nimg(run / "checkpoints" / "last.ckpt") == 16
    # SIGUSR1 (SLURM's warning) to rank 0 only, after iteration 6: the ranks agree to stop after that iteration's
    # checkpoint, and the job requeues itself.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'scontrol.args'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    stopped = train_py(run, devices=2, crash=dict(at="iteration_end", iteration=6, send="SIGUSR1"),
                       env={"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "4242"]
    worst = max_abs_difference(reference / "checkpoints" / f"snapshot-{TAGS[3]}.ckpt",
                               run / "checkpoints" / "last.ckpt")
    assert worst == {"state_dict": 0.0, "optimizer_states": 0.0, "rank_states": 0.0, "phase_input_sampler": 0.0}
    assert without_timing(stats(run)) == without_timing(stats(reference))[:3]
