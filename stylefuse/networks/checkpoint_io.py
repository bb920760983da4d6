"""Lightning's checkpoint I/O for stylefuse: checkpoints written whole or not at all, and read as plain data.

`Trainer(plugins=[SafeCheckpointIO()])` (train.py passes it) changes both directions of Lightning's own:
- saving: Lightning serializes to a temporary file in `$TMPDIR` and moves it; across filesystems (tmpfs /tmp, NFS
  outputs) the move is a copy that a kill cuts short, leaving a truncated `last.ckpt` in place of the good one. Here
  the checkpoint is written beside its destination, read back, flushed to the disk and renamed over the previous
  one, which stays until then (stylefuse.utils.files); a failed write raises one `SaveError` naming the file.
- loading: `Trainer.fit(ckpt_path=...)` (and validate/test/predict) read the file with every network-file check
  (`snapshot.check_checkpoint`): a checkpoint that is not plain data is one NetworkFileError and nothing in it runs,
  whatever torch.load's defaults or `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` say.
(A module of its own so that importing stylefuse.networks does not import Lightning.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from stylefuse.errors import SaveError
from stylefuse.networks.snapshot import check_checkpoint, read_plain_torch_file
from stylefuse.utils.files import atomic_write, torch_save


def _read_back(path: Path) -> None:
    """The temporary file is a whole torch.save file (tensors mapped, not read: a check of its structure)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise SaveError(f"the checkpoint written to {path} does not read back ({type(err).__name__}); check the disk "
                        f"of {path.parent} -- the previous checkpoint is kept") from err


def is_state_dict(data: Any) -> bool:
    return isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())


class SafeCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        atomic_write(path, lambda tmp: torch_save(checkpoint, tmp), verify=_read_back)

    def load_checkpoint(self, path: Any, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """The checkpoint's plain contents, CPU tensors (Lightning moves the states to the module's device)."""
        data = read_plain_torch_file(path, "checkpoint")
        if is_state_dict(data):  # rank 0's weights, handed back by Lightning's spawn launcher (trainer=ddp_cpu)
            return data
        return check_checkpoint(data, str(path))

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        Path(path).unlink(missing_ok=True)
