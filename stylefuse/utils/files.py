"""Files that are whole or absent.

A file is written to a temporary file beside its destination (same folder, so the same filesystem: `$TMPDIR` may
be a small tmpfs or another disk, and a move across filesystems is a copy that a crash cuts short), flushed to the
disk, optionally read back, then renamed over the destination. Until that rename the previous version stays in
place; whenever the process dies, a reader finds the old file or the new one, never half of one. A write that fails
raises `SaveError` naming the file; a temporary file that a killed process left behind is removed by
`remove_temp_files` when the run starts again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from stylefuse.errors import SaveError

TEMP_MARK = ".tmp-"  # .<name>.tmp-<pid><suffix>: hidden, recognisable, and keeping the suffix that writers read


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}{path.suffix}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flushes a file's (or a folder's: the names in it) data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None],
                 verify: Callable[[Path], None] | None = None) -> None:
    """Writes `path` whole: `write(tmp)` creates the temporary file, `verify(tmp)` may check it (raising if it is
    not what was meant), then it replaces `path`. An OSError becomes a one-line `SaveError`."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        fsync_path(tmp)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except SaveError:
        raise
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SaveError(f"cannot write {path} ({reason}); check the free space and the permissions of "
                        f"{path.parent} -- the previous version of the file, if any, is kept") from err
    finally:
        tmp.unlink(missing_ok=True)  # only left when something failed


def torch_save(obj: object, path: Path) -> None:
    """torch.save through a Python file: a failed write (disk full, no permission) is then an OSError with its
    reason, where torch's own file writer raises a RuntimeError without one."""
    with open(path, "wb") as f:
        torch.save(obj, f)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Appends one line and flushes it to the disk (a log that survives kill -9 up to its last complete line)."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise SaveError(f"cannot append to {path} ({err.strerror or type(err).__name__}); check the free space and "
                        f"the permissions of {os.path.dirname(os.path.abspath(path))}") from err


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary files of writes that a killed process left in `folder`; returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{TEMP_MARK}*")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
