"""Scalar logging against kimg, the x-axis StyleGAN users read (Lightning's global_step counts optimizer steps), and
the CSV logger of a run that can be continued."""

from __future__ import annotations

import csv
import os

import pytorch_lightning as pl
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import csv_logs
from pytorch_lightning.utilities import rank_zero_only

from stylefuse.utils.files import atomic_write, fsync_path


@rank_zero_only
def log_scalars(trainer: pl.Trainer, values: dict[str, float], kimg: float) -> None:
    """Sends `values` plus `progress/kimg` to every logger of `trainer` (rank 0 only)."""
    row = {name: float(value) for name, value in values.items()}
    row["progress/kimg"] = float(kimg)
    for logger in trainer.loggers:
        logger.log_metrics(row, step=trainer.global_step)


class _ContinuedMetricsWriter(csv_logs.ExperimentWriter):
    """Lightning's metrics.csv writer, except that an existing file is the same run's history (cut back to the
    checkpoint when the run resumed, stylefuse.training.resume): it is appended to, not deleted, and every save
    reaches the disk; a new column rewrites the file whole."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        path = self.metrics_file_path
        if new_keys or not os.path.isfile(path):
            rows = []
            if os.path.isfile(path):
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))

            def write(tmp):
                with open(tmp, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(rows + self.metrics)

            atomic_write(path, write)
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.metrics_keys).writerows(self.metrics)
            fsync_path(path)
        self.metrics = []


class CSVLogger(csv_logs.CSVLogger):
    """`pytorch_lightning.loggers.CSVLogger` for a run folder that a resumed run continues (see the writer)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _ContinuedMetricsWriter:
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _ContinuedMetricsWriter(log_dir=self.log_dir)
        return self._experiment
