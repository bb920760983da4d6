"""Where a run starts: a new run, a new run from another network's weights, or the continuation of a checkpoint.

A run folder holds one run. `resume=<run>/checkpoints/<file>.ckpt` continues that run, in its own folder unless
`hydra.run.dir` says otherwise (conf/hydra/default.yaml). Starting in a folder that already holds checkpoints
continues its newest one, which `resume=auto` asks for explicitly: a requeued cluster job with a fixed run folder
restarts with the same command line (also when that line names a network to start from: the checkpoint holds the
weights by then). Any other `resume` (a network file, URL or name) starts a new run from those weights.

A continued run is rebuilt from the checkpoint's hyper-parameters, transfer-learning settings included; only the
training length (`total_kimg`), the data's location, the memory layout and compilation come from the config, and a
checkpoint of another architecture is refused with the overrides that would match it. The folder's logs are cut back
to the checkpoint (the ticks a killed attempt logged after it are redone), so that they tell one continuous story.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylefuse.errors import ConfigError, NetworkFileError
from stylefuse.networks.snapshot import is_training_checkpoint, read_checkpoint
from stylefuse.training.builders import network_kwarg_override
from stylefuse.training.plot import read_jsonl
from stylefuse.utils.files import atomic_write, remove_temp_files

log = logging.getLogger(__name__)

# Module arguments that a continued run takes from the config: the training length, where the data is now, and the
# memory layout and compilation (properties of the machine). Everything else is the checkpoint's.
FROM_CONFIG = ("total_kimg", "training_set_kwargs", "fp32_channels_last", "compile_main_phases")
ARCHITECTURE = ("G_kwargs", "D_kwargs")


@dataclass(frozen=True)
class Start:
    checkpoint: Path | None = None   # a training checkpoint to continue
    transfer: str | None = None      # a network to start a new run from (official --resume)


def checkpoint_nimg(checkpoint: dict) -> int:
    return int(checkpoint["state_dict"]["cur_nimg"])


def newest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint of `run_dir` that is furthest into training (last.ckpt on a tie), or None."""
    folder = Path(run_dir) / "checkpoints"
    candidates: list[tuple[int, int, Path]] = []
    last = folder / "last.ckpt"
    if last.is_file():
        try:
            candidates.append((checkpoint_nimg(read_checkpoint(last)), 1, last))
        except (NetworkFileError, KeyError) as err:
            log.warning("skipping %s: %s", last, err)
    for path in folder.glob("snapshot-*.ckpt"):
        kimg, _, frac = path.stem.removeprefix("snapshot-").partition(".")
        if kimg.isdigit() and frac.isdigit():
            candidates.append((int(kimg) * 1000 + int(frac), 0, path))
    return max(candidates)[2] if candidates else None


def plan_start(resume: str | None, run_dir: str | os.PathLike) -> Start:
    """How a run with this `resume` value begins in `run_dir` (see the module docstring)."""
    run_dir = Path(run_dir)
    existing = newest_checkpoint(run_dir)
    if resume not in (None, "auto") and is_training_checkpoint(resume):
        checkpoint = Path(resume)
        if existing is not None and checkpoint.resolve().parent != (run_dir / "checkpoints").resolve():
            raise ConfigError(f"{run_dir} already holds a run ({existing}); continue that one with resume=auto, or "
                              f"resume {checkpoint} in its own folder (the default) or a new hydra.run.dir")
        return Start(checkpoint=checkpoint)
    if existing is not None:
        if resume not in (None, "auto"):
            log.info("%s already holds this run: continuing it from %s (resume=%s only starts new run folders)",
                     run_dir, existing, resume)
        return Start(checkpoint=existing)
    if resume == "auto":
        log.info("no checkpoint in %s yet: starting a new run", run_dir / "checkpoints")
        return Start()
    return Start(transfer=resume)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {key: leaf for name, item in value.items() for key, leaf in _flatten(item, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): list(value) if isinstance(value, tuple) else value}


def restored_module_kwargs(saved: dict, config: dict, checkpoint: str) -> dict:
    """The module arguments of a continued run: the checkpoint's hyper-parameters `saved`, with FROM_CONFIG taken
    from the arguments the config builds (`config`). Raises ConfigError for another architecture."""
    old, new = _flatten(saved), _flatten(config)
    differing = [key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]
    architecture = [key for key in differing if key.split(".")[0] in ARCHITECTURE]
    if architecture:
        shown = ", ".join(f"{key} {old.get(key)!r} (config {new.get(key)!r})" for key in architecture)
        overrides = sorted({o for key in architecture if (o := network_kwarg_override(key, old.get(key)))})
        hint = f"resume with {' '.join(overrides)}" if overrides else "resume with the config it was trained with"
        raise ConfigError(f"{checkpoint} holds another architecture than the config: {shown}; {hint}, or start a "
                          f"new run folder")
    kept = [f"{key}={old.get(key)!r} (config {new.get(key)!r})" for key in differing
            if key.split(".")[0] not in FROM_CONFIG]
    if kept:
        log.info("continuing with the checkpoint's settings where the config differs: %s", ", ".join(kept))
    return dict(saved, **{key: config[key] for key in FROM_CONFIG})


def trim_logs(run_dir: str | os.PathLike, nimg: int | None) -> None:
    """Cuts the logs of `run_dir` back to the checkpoint at `nimg` (None: a new run, nothing kept): stats.jsonl,
    metric-*.jsonl and CSV loggers' metrics.csv lose the rows a killed attempt wrote after it, and the temporary
    files of writes it did not finish are removed."""
    run_dir = Path(run_dir)

    def keep(kimg: Any) -> bool:
        return nimg is not None and (kimg is None or round(float(kimg) * 1000) <= nimg)

    for folder in (run_dir, run_dir / "checkpoints"):
        for path in remove_temp_files(folder):
            log.info("removed %s, left by an interrupted write", path)
    for path in [run_dir / "stats.jsonl", *sorted(run_dir.glob("metric-*.jsonl"))]:
        if path.is_file():
            rows = [row for row in read_jsonl(path) if keep(row.get("kimg"))]
            atomic_write(path, lambda tmp, rows=rows: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows)))
    for path in sorted(run_dir.rglob("metrics.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], [row for row in reader if keep(row.get("progress/kimg") or None)]

        def write(tmp: Path, fields=fields, rows=rows) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(path, write)
