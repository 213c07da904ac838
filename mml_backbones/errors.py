"""Exceptions raised for bad input; each message names the problem and what was expected."""

from __future__ import annotations


class DUSError(Exception):
    """Base class of the errors this package raises on purpose."""


class ConfigError(DUSError, ValueError):
    """A configuration value, name or option is invalid."""


class DataError(DUSError, ValueError):
    """A dataset, array or file does not have the expected content or layout."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A file or directory a loader needs is missing."""


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs, newlines included, become one space), cut at ``limit`` characters.

    For messages that quote a file's content or a library's multi-line error: the CLI prints errors as one line.
    """
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
