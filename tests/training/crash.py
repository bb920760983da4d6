"""A test-only callback that ends a training run abruptly at a chosen moment, added on the train.py command line as
`+callbacks.crash={_target_:tests.training.crash.Crash,...}` (the tests package sits beside train.py). It is not part
of stylefuse: runs only ever meet it through the tests.

Moments (`at`), counted in iterations done (`StyleGAN2Module.batch_idx`) on rank 0:
- `iteration_end`: after iteration `iteration`, before its snapshot is written (between ticks, or just before one);
- `mid_iteration`: inside iteration `iteration` + 1, between its G and D optimizer steps;
- `save`: halfway through the `save`-th file written with torch.save by this process (checkpoints, network files);
- `readonly`: after iteration `iteration`, the checkpoint folder stops accepting new files.
`send` is the signal: SIGKILL to the whole process group (the test starts the run in its own session, so all ranks of a
distributed run die at once, as on a crashed node), anything else to this process only (a scheduler's notice).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch


def make_readonly(folder: Path) -> None:
    """No new files in `folder`, also for root (which ignores permissions): chmod, then the immutable attribute."""
    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return
    probe.unlink()
    subprocess.run(["chattr", "+i", str(folder)], check=True)


def make_writable(folder: Path) -> None:
    subprocess.run(["chattr", "-i", str(folder)], check=False, capture_output=True)
    folder.chmod(0o755)


class Crash(pl.Callback):
    def __init__(self, at: str, iteration: int = 0, save: int = 1, send: str = "SIGKILL"):
        assert at in ("iteration_end", "mid_iteration", "save", "readonly"), at
        self.at, self.iteration, self.save, self.send = at, iteration, save, signal.Signals[send]
        self.saves = 0

    def _strike(self) -> None:
        if self.send == signal.SIGKILL:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), self.send)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.at != "save" or trainer.global_rank != 0:
            return
        real_save = torch.save

        def save_then_die(obj, f, *args, **kwargs):
            self.saves += 1
            if self.saves < self.save:
                return real_save(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            with open(f, "wb") if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f) as out:
                out.write(data[: len(data) // 2])
                out.flush()
                os.fsync(out.fileno())
            self._strike()

        torch.save = save_then_die

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if (self.at == "mid_iteration" and trainer.global_rank == 0 and int(pl_module.batch_idx) == self.iteration
                and optimizer is trainer.optimizers[1]):
            self._strike()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_rank != 0 or int(pl_module.batch_idx) != self.iteration:
            return
        if self.at == "iteration_end":
            self._strike()
        elif self.at == "readonly":
            make_readonly(Path(trainer.default_root_dir) / "checkpoints")

