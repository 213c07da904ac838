"""TensorBoard events of a training run (``dus train --tensorboard``): every epoch's row as scalars.

Written with ``torch.utils.tensorboard``, which needs the ``tensorboard`` package (``pip install
'dus[tensorboard]'``; it is in the dev extra too). One folder per run directory (``RUN_DIR/tensorboard``): a
resumed run appends to it, dropping the events of epochs after its checkpoint, so TensorBoard shows one run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mml_backbones.errors import ConfigError

#: columns of an epoch row that are coordinates, not quantities
_AXES = ("epoch", "iteration", "seconds")


class TensorBoardLog:
    """An ``EpochLogger`` that writes each epoch's numbers as TensorBoard scalars (step: the epoch)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install 'dus[tensorboard]'") from None
        self.path = Path(path)
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """Every finite number of ``row`` under its column name, at step ``row["epoch"]``."""
        step = int(row["epoch"])
        if self.writer is None:  # the first epoch logged is where the run goes on: drop later events of old tries
            self.writer = self._writer_class(log_dir=str(self.path), purge_step=step)
        for key, value in row.items():
            if key in _AXES or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
