"""Training statistics, once per tick (the official `kimg_per_tick` reporting unit).

The training module adds every round's per-sample statistics to a `RunningStats`; at each tick the `TickCallback`
reduces them over all ranks, adds timing and memory, and reports them: one line of `<run>/stats.jsonl` (what the
Figure-4 plot reads), every logger against kimg, a log line, and `trainer.callback_metrics` (the progress bar).
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch

from stylefuse.training import ddp
from stylefuse.training.logging import log_scalars
from stylefuse.utils.files import append_line

log = logging.getLogger(__name__)


class RunningStats:
    """Sum, sum of squares and count of every named statistic since the last tick, in float64 on its device."""

    def __init__(self) -> None:
        self.entries: dict[str, torch.Tensor] = {}  # name -> [sum, sum of squares, count]

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for name, values in stats.items():
            values = values.to(torch.float64)
            count = torch.tensor(values.numel(), dtype=torch.float64, device=values.device)
            entry = torch.stack([values.sum(), values.square().sum(), count])
            self.entries[name] = self.entries[name] + entry if name in self.entries else entry

    def collect(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """Means over all ranks (`reduce_sum` sums a tensor over them), plus the std of every `scores/*`; resets.
        Every rank must call it with the same names recorded (one collective for all of them)."""
        names = sorted(self.entries)
        values: dict[str, float] = {}
        if names:
            totals = reduce_sum(torch.stack([self.entries[name] for name in names]))
            for name, (total, total_sq, count) in zip(names, totals.tolist()):
                values[name] = total / max(count, 1)
                if name.startswith("scores/"):
                    variance = max(total_sq / max(count, 1) - values[name] ** 2, 0)
                    values[name.replace("scores/", "scores_std/")] = math.sqrt(variance)
        self.entries = {}
        return values

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: entry.detach().cpu() for name, entry in self.entries.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.entries = {name: entry.to(device, torch.float64) for name, entry in state.items()}


class TickCallback(pl.Callback):
    """Reports the module's statistics after the first iteration, every `kimg_per_tick` and after the last one.

    Its counters are checkpointed: a resumed run goes on with the next tick number, the tick in progress and the
    training time so far (the time between the checkpoint and a crash is not counted)."""

    def __init__(self, kimg_per_tick: float):
        if not kimg_per_tick > 0:
            raise ValueError("kimg_per_tick must be positive")
        self.kimg_per_tick = kimg_per_tick
        self.tick = 0
        self.tick_start_nimg = 0
        self.tick_start_time = self.start_time = time.time()
        self.restored: dict | None = None

    def state_dict(self) -> dict:
        now = time.time()
        return {"tick": self.tick, "tick_start_nimg": self.tick_start_nimg, "seconds": now - self.start_time,
                "tick_seconds": now - self.tick_start_time}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored = dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.time()
        state = self.restored or {"tick": 0, "tick_start_nimg": int(pl_module.cur_nimg), "seconds": 0,
                                  "tick_seconds": 0}
        self.tick, self.tick_start_nimg = int(state["tick"]), int(state["tick_start_nimg"])
        self.start_time, self.tick_start_time = now - state["seconds"], now - state["tick_seconds"]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        cur_nimg = int(pl_module.cur_nimg)
        if self.tick == 0 or pl_module.done or cur_nimg >= self.tick_start_nimg + self.kimg_per_tick * 1000:
            self.report(trainer, pl_module)

    def report(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        values = pl_module.running_stats.collect(ddp.reduce_sum)
        now = time.time()
        cur_nimg = int(pl_module.cur_nimg)
        tick_kimg = (cur_nimg - self.tick_start_nimg) / 1000
        sec_per_tick = now - self.tick_start_time
        values.update({
            "progress/tick": self.tick,
            "augment/p": pl_module.augment_p if pl_module.augment_p is not None else 0.0,
            "timing/sec_per_tick": sec_per_tick,
            "timing/sec_per_kimg": sec_per_tick / tick_kimg if tick_kimg > 0 else float("nan"),
            "timing/total_hours": (now - self.start_time) / 3600,
            "resources/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        })
        if pl_module.device.type == "cuda":
            values["resources/peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        if trainer.is_global_zero:
            write_stats_line(trainer.default_root_dir, pl_module.kimg, values)
            log.info("tick %-4d kimg %-8.1f sec/kimg %-7.2f G %-7.3f D %-7.3f augment %.3f", self.tick,
                     pl_module.kimg, values["timing/sec_per_kimg"], values.get("loss/G", float("nan")),
                     values.get("loss/D", float("nan")), values["augment/p"])
        log_scalars(trainer, values, pl_module.kimg)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()  # on disk every tick (Lightning's CSV logger would wait 100 steps)
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in values.items()})
        self.tick += 1
        self.tick_start_nimg = cur_nimg
        self.tick_start_time = now
        return values


def write_stats_line(run_dir: str | os.PathLike, kimg: float, values: dict[str, float]) -> None:
    """Appends one JSON line to <run_dir>/stats.jsonl (the local record that the Figure-4 plot reads)."""
    row = {"kimg": kimg, "timestamp": time.time(), **values}
    append_line(os.path.join(run_dir, "stats.jsonl"), json.dumps(row))
