"""Where loaders cache preprocessed data, and the one way they read and write it."""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """Directory of cached preprocessed data (DUS_CACHE_DIR, else ~/.cache/dus)."""
    return Path(os.environ.get("DUS_CACHE_DIR", Path.home() / ".cache" / "dus"))


def cached_arrays(
    name: str,
    build: Callable[[], Arrays],
    valid: Callable[[Arrays], bool] | None = None,
    enabled: bool = True,
) -> Arrays:
    """The arrays cached as ``cache_dir()/name`` (an .npz), else ``build()`` them and cache the result.

    A file that does not read back whole, lacks an array or fails ``valid`` is deleted and rebuilt, never trusted.
    The file is written under a per-process temporary name and renamed, so a concurrent reader never sees half of
    it; a cache that cannot be written only costs time.
    """
    if not enabled:
        return build()
    path = cache_dir() / name
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if valid is None or valid(arrays):
                log.info("read cached arrays %s", path)
                return arrays
            log.warning("cache %s has unexpected contents; rebuilding it", path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("cache %s is unreadable (%s); rebuilding it", path, e)
        path.unlink(missing_ok=True)
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    except OSError as e:
        log.warning("cannot write cache %s: %s", path, e)
    return arrays
