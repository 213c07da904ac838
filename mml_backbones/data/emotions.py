"""The nine ArtEmis emotions shared by the ArtELingo loader and the synthetic emotion task."""

from __future__ import annotations

EMOTIONS = (
    "amusement",
    "awe",
    "contentment",
    "excitement",
    "anger",
    "disgust",
    "fear",
    "sadness",
    "something else",
)
#: valence group of each emotion: 0 positive, 1 negative, 2 something else (as ArtEmis groups them)
VALENCE = (0, 0, 0, 0, 1, 1, 1, 1, 2)

__all__ = ["EMOTIONS", "VALENCE"]
