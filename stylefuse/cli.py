"""The command-line jobs, one convention for all of them.

A job is a function `run(cfg: DictConfig)` of the package: the edge where a composed config becomes the plain
arguments of library code. `hydra_job(config_name, run)` turns it into the Hydra main over `conf/<config_name>.yaml`
used by `train.py`, `project.py`, `fuse.py` and the `python -m stylefuse.<job>` modules:
- the composed config passes the job's start-up checks (`stylefuse.config_checks`) before `run` starts;
- a user error (any `StylefuseError`, an unset `???` value, a typo in a key or an override Hydra cannot read, a run
  folder that cannot be created) is printed as one line `error: ...` and exits with status 2;
- the run folder of a job that failed with a user error is removed when it holds nothing but what Hydra wrote into
  it (never a folder with results, never one that existed before the command);
- the job's return value goes to Hydra (the number a sweeper optimizes).
"""

from __future__ import annotations

import difflib
import functools
import logging
import netrc
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

from stylefuse.errors import ConfigError, StylefuseError

# conf/ sits beside the package in the repository (the project is installed in editable mode).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# What Hydra writes into a run folder before the job starts (besides the job's log file).
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def wandb_offline() -> bool:
    """W&B runs online only when the user is logged in (API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def checkpoint_run_dir(resume: Any, default: str) -> str:
    """The run folder of `resume` when it is a training checkpoint in it (`<run>/checkpoints/<file>.ckpt`), so that
    the continued run goes on in the same folder; `default` otherwise."""
    path = Path(str(resume)) if resume is not None else None
    if path is not None and path.suffix == ".ckpt" and path.parent.name == "checkpoints" and path.is_file():
        return str(path.parent.parent)
    return default


def register_resolvers() -> None:
    """The resolvers the config tree uses (`${wandb_offline:}`, `${checkpoint_run_dir:...}`); called before any
    config is composed."""
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("checkpoint_run_dir", checkpoint_run_dir, replace=True)


def compose_config(config_name: str | None, overrides: Sequence[str] = (),
                   return_hydra_config: bool = False) -> DictConfig:
    """`conf/<config_name>.yaml` (None = the groups only) composed with command-line style overrides, outside a
    Hydra main: the benchmarks and tests build their configs with it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns a `StylefuseError` raised by `fn` into `error: <message>` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StylefuseError as err:
            exit_with_error(str(err))

    return wrapper


def exit_with_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------
# Run folders.


class RunFolders(Callback):
    """Hydra callback (conf/hydra/default.yaml): notes the run and sweep folders that exist before Hydra creates them,
    so that a failed job removes only folders of its own making."""

    existing: ClassVar[set[Path]] = set()  # run or sweep folders that existed before the command
    made: ClassVar[set[Path]] = set()      # run or sweep folders, and parents of them, that Hydra creates
    sweep_dir: ClassVar[Path | None] = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.note(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        RunFolders.sweep_dir = self.note(config.hydra.sweep.dir)

    @classmethod
    def note(cls, folder: str) -> Path:
        path = Path(folder).absolute()
        if path.exists():
            cls.existing.add(path)
        cls.made.update(p for p in (path, *path.parents) if not p.exists())
        return path


def holds_only(folder: Path, names: set[str]) -> bool:
    """Whether every file below `folder` is one of `names` (paths relative to it)."""
    for path in folder.rglob("*"):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(kept.startswith(f"{name}/") for kept in names):
                return False
        elif name not in names:
            return False
    return True


def remove_folder(folder: Path, names: set[str]) -> None:
    """Removes `names` from `folder`, the emptied sub-folders, and `folder` itself with the parents Hydra made for it
    unless it existed before."""
    for name in names:
        (folder / name).unlink(missing_ok=True)
    for sub in sorted({(folder / name).parent for name in names}, key=lambda p: len(p.parts), reverse=True):
        if sub != folder and sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if folder.absolute() in RunFolders.existing or any(folder.iterdir()):
        return
    folder.rmdir()
    for parent in folder.absolute().parents:
        if parent not in RunFolders.made or any(parent.iterdir()):
            break
        parent.rmdir()


def close_log_files(folder: Path) -> None:
    """Closes the logging handlers writing into `folder` (Hydra's job log), so that the file can go."""
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == folder:
                handler.close()
                logger.removeHandler(handler)


def discard_unused_run_folder() -> None:
    """After a user error: removes this job's run folder if Hydra's files are all it holds (the job wrote nothing),
    and in a sweep (-m) the sweep folder too if nothing else is left in it than Hydra's multirun.yaml."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    own = {f"{hydra_cfg.job.name}.log"}
    if hydra_cfg.output_subdir is not None:
        own |= {f"{hydra_cfg.output_subdir}/{name}" for name in HYDRA_FILES}
    if not run_dir.is_dir() or not holds_only(run_dir, own):
        return
    close_log_files(run_dir)
    remove_folder(run_dir, own)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        discard_unused_sweep_folder()


def discard_unused_sweep_folder() -> None:
    sweep_dir = RunFolders.sweep_dir
    if sweep_dir is not None and sweep_dir.is_dir() and holds_only(sweep_dir, {"multirun.yaml"}):
        remove_folder(sweep_dir, {"multirun.yaml"})


# ----------------------------------------------------------------------------
# Hydra's own errors (composing the config, creating the run folder), in one line.


def close_keys(root: DictConfig, key: str) -> list[str]:
    """Keys of the config whose last part resembles the last part of `key` (a typo, or a knob that moved)."""
    keys: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        for name in node.keys():
            full = f"{prefix}{name}"
            keys.append(full)
            child = node._get_node(name)
            if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
                walk(child, f"{full}.")

    walk(root, "")
    keys = [k for k in keys if not k.startswith("hydra.") and k != "hydra"]
    by_name: dict[str, list[str]] = {}
    for full in keys:
        by_name.setdefault(full.rpartition(".")[2], []).append(full)
    names = difflib.get_close_matches(key.rpartition(".")[2], list(by_name), n=3, cutoff=0.55)
    return [full for name in names for full in by_name[name]][:3]


def hydra_error_line(err: CompactHydraException) -> str:
    """One line for a Hydra composition or override error (Hydra prints several, then `HYDRA_FULL_ERROR` advice)."""
    cause = err.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key and cause.parent_node is not None:
        # An override of a key the config does not have: a typo, or a knob that lives elsewhere.
        key = cause.full_key
        guesses = close_keys(cause.parent_node._get_root(), key)
        guess = f"; did you mean {' or '.join(guesses)}?" if guesses else ""
        return f"{key} is not a key of this config{guess} (to add a new key, write +{key}=...)"
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option} is not an option of {group}: use one of {', '.join(err.options)}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines[:2])


def instantiation_error_line(err: InstantiationException) -> str:
    """One line for a class built from the config (`_target_`) that refused its arguments."""
    target = next(iter(re.findall(r"'([\w.]+)'", str(err))), "a class of the config")
    key = re.search(r"full_key: ([\w.]+)", str(err))
    cause = err.__cause__ if err.__cause__ is not None else err
    where = f"{key.group(1)} ({target})" if key else target
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return f"{where} does not accept its config: {reason}; fix the value on the command line"


@contextmanager
def hydra_errors_raised() -> Iterator[None]:
    """Hydra raises its errors (as it does with HYDRA_FULL_ERROR=1) instead of printing them over several lines."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


# ----------------------------------------------------------------------------


def make_output_folder(cfg: DictConfig) -> None:
    """Creates `paths.output_dir` (Hydra's run folder unless overridden) before any work, so that a folder that cannot
    be made is one line at start-up, not a traceback after the work."""
    output_dir = OmegaConf.select(cfg, "paths.output_dir")
    if output_dir is None:
        return
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the output folder {output_dir} ({err.strerror or err}); choose a folder "
                          f"you can write to with paths.output_dir=...") from None


def hydra_job(config_name: str, run: Callable[[DictConfig], Any]) -> Callable[[], Any]:
    """The command-line main of a job: composes `conf/<config_name>.yaml` with the command line, checks it and calls
    `run`."""

    def checked_run(cfg: DictConfig, full_errors: bool) -> Any:
        from stylefuse.config_checks import check_config  # imports the library; the data tool only needs the above

        check_config(config_name, cfg)
        make_output_folder(cfg)
        try:
            return run(cfg)
        except MissingMandatoryValue as err:  # a `???` knob without a start-up check
            raise ConfigError(f"{err.full_key} must be set: add {err.full_key}=... to the command line") from None
        except InstantiationException as err:  # a `_target_` class (Lightning's Trainer, ...) refused its arguments
            if full_errors:
                raise
            raise ConfigError(instantiation_error_line(err)) from err

    def main() -> Any:
        register_resolvers()
        full_errors = os.environ.get("HYDRA_FULL_ERROR") == "1"  # the user asked for Hydra's full tracebacks
        started = False

        @user_errors
        def task(cfg: DictConfig) -> Any:
            nonlocal started
            started = True
            try:
                return checked_run(cfg, full_errors)
            except StylefuseError:
                discard_unused_run_folder()
                raise

        hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)
        if full_errors:
            return hydra_main()
        with hydra_errors_raised():
            try:
                return hydra_main()
            except CompactHydraException as err:
                discard_unused_sweep_folder()  # a sweep's jobs are composed after its folder is made
                exit_with_error(hydra_error_line(err))
            except OSError as err:
                if started:
                    raise
                exit_with_error(f"cannot create the run folder {err.filename or ''} ({err.strerror or err}); run "
                                f"from a folder you can write to, or choose one with hydra.run.dir=... "
                                f"(hydra.sweep.dir=... with -m)")

    return main
