"""Lightning checkpoints written whole or not at all, and read as plain data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import CheckpointIO

from stylefuse.errors import SaveError
from stylefuse.utils.files import atomic_write, torch_save


def _read_back(path: Path) -> None:
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise SaveError(f"the checkpoint written to {path} does not read back ({type(err).__name__}); check the disk "
                        f"of {path.parent} -- the previous checkpoint is kept") from err


class AtomicCheckpointIO(CheckpointIO):
    """Lightning's checkpoint I/O without its temporary file in `$TMPDIR` (moved across filesystems, a kill during
    the copy truncates the checkpoint): serialized beside the destination, read back, flushed to the disk and
    renamed over the previous checkpoint, which stays until then (stylefuse.utils.files). A failed write raises
    `SaveError` naming the file. Loading never runs code (`weights_only`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        atomic_write(path, lambda tmp: torch_save(checkpoint, tmp), verify=_read_back)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        Path(path).unlink(missing_ok=True)
