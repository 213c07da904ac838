"""Where loaders cache preprocessed data."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Directory of cached preprocessed data (DUS_CACHE_DIR, else ~/.cache/dus)."""
    return Path(os.environ.get("DUS_CACHE_DIR", Path.home() / ".cache" / "dus"))
