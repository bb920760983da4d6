"""Lightning's checkpoint I/O with loading through stylefuse's restricted reader.

`Trainer(plugins=[RestrictedCheckpointIO()])` makes `Trainer.fit(ckpt_path=...)` (and validate/test/predict) read a
checkpoint with every network-file check (`snapshot.read_checkpoint`): a checkpoint that is not plain data is one
NetworkFileError and nothing in it runs, whatever torch.load's defaults or `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` say.
Saving is Lightning's own. (A module of its own so that importing stylefuse.networks does not import Lightning.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from stylefuse.networks.snapshot import read_checkpoint


class RestrictedCheckpointIO(TorchCheckpointIO):
    def load_checkpoint(self, path: Any, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """The checkpoint's plain contents, CPU tensors (Lightning moves the states to the module's device)."""
        return read_checkpoint(path)
