"""Stopping a run cleanly when a scheduler asks: a checkpoint at the end of the current iteration, then exit.

SLURM sends SIGTERM before it kills a job (preemption, scancel) and, with `sbatch --signal=USR1@120`, SIGUSR1 that
many seconds before the time limit; submitit's launcher asks for SIGUSR2. `StopSignals` records them while training
runs (in place of Lightning's SIGTERM handler, which exits without a checkpoint); the checkpoint writer asks at the
end of every iteration, agreed by all ranks (a signal may reach them during different iterations). After the
checkpoint, a handler that was installed before training (submitit's, which requeues its job) gets the signal; with
none, a SLURM job requeues itself on the `requeue` signals (`scontrol requeue`, as Lightning does on SIGUSR1).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence

import torch

from stylefuse.errors import ConfigError
from stylefuse.training import ddp

log = logging.getLogger(__name__)


def parse_signals(names: Sequence[str]) -> list[signal.Signals]:
    try:
        return [signal.Signals[name if name.startswith("SIG") else f"SIG{name}"] for name in names]
    except KeyError as err:
        raise ConfigError(f"unknown signal {err.args[0]!r} among the stop signals; use names like SIGTERM, "
                          f"SIGUSR1") from err


class StopSignals:
    def __init__(self, stop: Sequence[str], requeue: Sequence[str] = ()):
        self.signals = parse_signals(stop)
        self.requeue = set(parse_signals(requeue))
        self.received: signal.Signals | None = None
        self.previous: dict[signal.Signals, object] = {}

    def remember_handlers(self) -> None:
        """Call before the trainer installs its own handlers: these are the ones to hand a signal on to."""
        self.previous = {sig: signal.getsignal(sig) for sig in self.signals}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # Python only lets the main thread set handlers
            for sig in self.signals:
                signal.signal(sig, self._record)

    def _record(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
            log.info("%s received: stopping after this iteration's checkpoint", self.received.name)

    def requested(self, device: torch.device) -> bool:
        """Whether any rank received a stop signal (a collective: every rank asks after every iteration)."""
        if not ddp.is_distributed():
            return self.received is not None
        return bool(ddp.reduce_sum(torch.tensor([float(self.received is not None)], device=device)) > 0)

    def hand_on(self, is_global_zero: bool) -> None:
        """After the checkpoint: the handler that was there before training gets the signal, or SLURM requeues."""
        if self.received is None:
            return
        handler = self.previous.get(self.received)
        if callable(handler):
            log.info("handing %s on to the handler installed before training", self.received.name)
            handler(self.received, None)
        elif self.received in self.requeue and is_global_zero and os.environ.get("SLURM_JOB_ID"):
            job = os.environ["SLURM_JOB_ID"]
            if os.environ.get("SLURM_ARRAY_JOB_ID"):
                job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            status = subprocess.call(["scontrol", "requeue", job])
            log.info("SLURM job %s %s", job, "requeued" if status == 0 else f"not requeued (scontrol exit {status})")


@contextlib.contextmanager
def forward_signals_to_children(signals: Sequence[signal.Signals]) -> Iterator[None]:
    """In a process that launched the ranks (trainer=ddp_cpu spawns them) and waits: a stop signal sent to it
    (kill, docker stop) reaches the ranks, which checkpoint and stop, instead of ending it alone."""

    def forward(signum: int, frame) -> None:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
