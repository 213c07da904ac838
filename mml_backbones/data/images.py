"""One store for image modalities: a shared table of uint8 images (or feature rows) gathered per batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mml_backbones.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageStore:
    """A ModalitySource over a shared table: sample i is ``table[rows[i]]``, converted one batch at a time.

    uint8 tables hold images whose last three axes are (3, H, W), e.g. (N, 3, H, W) paintings or (N, K, 3, H, W)
    video frames; they stay uint8 in memory (a float32 copy is 4x larger) and batches come back as float32 scaled
    to [0, 1] and normalised per channel with ``mean`` and ``std`` (ImageNet's by default). Floating tables hold
    feature vectors and are returned as float32 as they are. Several samples may share a row (the comments of one
    painting) and ``subset`` makes views that share the table, so nothing is copied.
    """

    def __init__(
        self,
        table: torch.Tensor,
        rows: torch.Tensor | np.ndarray | Sequence[int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if table.dtype == torch.uint8:
            if table.ndim < 4 or table.shape[-3] != 3:
                raise DataError(
                    f"an image store needs uint8 (N, ..., 3, H, W) images, got {table.dtype} {tuple(table.shape)}"
                )
        elif not table.is_floating_point() or table.ndim < 2:
            raise DataError(f"an image store needs uint8 images or float features, got {table.dtype}")
        self.table = table
        self.rows = torch.arange(len(table)) if rows is None else torch.as_tensor(np.asarray(rows), dtype=torch.long)
        if self.rows.ndim != 1 or (
            len(self.rows) and not 0 <= int(self.rows.min()) <= int(self.rows.max()) < len(table)
        ):
            raise DataError(f"image store rows must be a 1-D index into {len(table)} stored rows")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        stored = self.stored(index)
        if stored.dtype == torch.uint8:
            return stored.float().div_(255.0).sub_(self._mean).div_(self._std)
        return stored.float()

    def stored(self, index: torch.Tensor) -> torch.Tensor:
        """The stored rows (uint8 images or features) of samples ``index``, unconverted."""
        return self.table[self.rows[torch.as_tensor(index, dtype=torch.long)]]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (3, H, W) or (frames, 3, H, W)."""
        return tuple(self.table.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the batches returned (float32)."""
        return torch.float32

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> ImageStore:
        """A view holding samples ``index`` (in that order), sharing the table."""
        return ImageStore(
            self.table, self.rows[torch.as_tensor(np.asarray(index), dtype=torch.long)], self.mean, self.std
        )

    def __repr__(self) -> str:
        return f"ImageStore({len(self)} samples of {self.sample_shape}, {self.table.dtype} table of {len(self.table)})"


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageStore"]
