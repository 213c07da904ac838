"""Train-split standardisation, the one implementation every loader uses (HAPT, npz, CREMA-D).

Statistics come from the training rows only and are applied unchanged to every split, so no information leaks
from validation or test. A feature that is constant on the training rows gets std 1: it becomes 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mml_backbones.errors import DataError

#: statistics with more values than this are summarised in ``info`` instead of listed (a config.json stays small)
MAX_INFO_VALUES = 4096
#: rows per chunk are chosen so that one chunk holds about this many bytes (memory stays flat on large arrays)
CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Standardization:
    """A mean and std per feature, shaped to broadcast against the full array (sample axis included).

    Attributes:
        mean, std: arrays with size 1 along the reduced axes (keepdims), in the dtype the statistics were fit in.
        axes: the axes reduced when fitting (0 is the sample axis; more axes pool e.g. the time steps).
    """

    mean: np.ndarray
    std: np.ndarray
    axes: tuple[int, ...]

    def apply(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(x - mean) / std``; pass ``out=x`` to standardise a large array in place."""
        if out is None:
            return (x - self.mean) / self.std
        np.subtract(x, self.mean, out=out)
        np.divide(out, self.std, out=out)
        return out

    def to_info(self) -> dict[str, Any]:
        """The statistics for ``DatasetSplits.info`` (JSON-ready; summarised when very large)."""
        mean, std = _squeeze(self.mean, self.axes), _squeeze(self.std, self.axes)
        info: dict[str, Any] = {"axes": list(self.axes), "shape": list(mean.shape)}
        if mean.size <= MAX_INFO_VALUES:
            info.update(mean=_floats(mean), std=_floats(std))
        else:
            info.update(
                mean_range=[float(mean.min()), float(mean.max())],
                std_range=[float(std.min()), float(std.max())],
                note=f"{mean.size} values per statistic: summarised (more than {MAX_INFO_VALUES})",
            )
        return info


def fit_standardization(
    x: np.ndarray,
    rows: np.ndarray | Sequence[int] | None = None,
    axes: Sequence[int] | None = (0,),
    eps: float = 0.0,
    dtype: np.dtype | type | None = None,
) -> Standardization:
    """Mean and std of ``x[rows]`` (all rows if None) over ``axes`` (None: every axis, one scalar each).

    Moments are computed chunk by chunk in ``dtype`` (default: the array's floating dtype, float16 raised to
    float32) and the chunks are merged in float64, so a large array is never copied whole. The statistics are
    returned in the array's dtype. ``eps`` is added to every std (HAPT keeps the 1e-6 its published arrays were
    made with); a std that is still 0 becomes 1.
    """
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"standardisation needs a floating-point array, got {x.dtype}")
    axes = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    if 0 not in axes:
        raise DataError(f"standardisation must reduce the sample axis 0, got axes {axes}")
    idx = np.arange(len(x)) if rows is None else np.asarray(rows)
    if len(idx) == 0:
        raise DataError("standardisation needs at least one training row")
    out_dtype = np.promote_types(x.dtype, np.float32)
    work = out_dtype if dtype is None else np.promote_types(np.dtype(dtype), np.float32)
    chunk = max(1, CHUNK_BYTES // max(1, x[:1].size * work.itemsize))
    n_total, mean, var = 0, None, None
    for start in range(0, len(idx), chunk):
        part = x[idx[start : start + chunk]].astype(work, copy=False)
        n = part.size // _keep_size(part.shape, axes)
        part_mean = part.mean(axis=axes, keepdims=True).astype(np.float64)
        part_var = part.var(axis=axes, keepdims=True).astype(np.float64)
        if mean is None:
            n_total, mean, var = n, part_mean, part_var
            continue
        # Chan et al.'s pairwise merge of two (count, mean, variance); one chunk keeps numpy's own mean and var
        total = n_total + n
        delta = part_mean - mean
        mean = mean + delta * (n / total)
        var = (n_total * var + n * part_var + delta**2 * (n_total * n / total)) / total
        n_total = total
    std = np.sqrt(var).astype(out_dtype) + out_dtype.type(eps)
    std[std == 0] = 1
    return Standardization(mean.astype(out_dtype), std, axes)


def _keep_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return int(np.prod([s for a, s in enumerate(shape) if a not in axes], dtype=np.int64))


def _squeeze(stat: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return stat.squeeze(axis=axes) if stat.ndim else stat


def _floats(a: np.ndarray) -> float | list[Any]:
    return a.astype(np.float64).tolist()


__all__ = ["Standardization", "fit_standardization"]
