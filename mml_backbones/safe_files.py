"""The one place that reads torch files and zip archives: files are data, never code.

What this package loads, and how (``tests/mml_backbones/test_safe_files.py`` fails on a ``torch.load``, pickle or
SB3 load anywhere else):

- torch files (a run's ``checkpoints/*.pt``, CREMA-D ``.pt`` spectrograms, the ``.pth`` entries of a policy
  ``.zip``) are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists, tuples and dicts
  come back, anything else (a class, a function, a pickled object of any kind) is refused before it is built.
- checkpoints are written as such data (``save_torch``): numpy arrays become tensors and numpy scalars Python
  numbers, so that the weights-only reader takes them back exactly.
- checkpoints of the previous format (2, numpy arrays inside) are read with numpy's array and scalar
  re-constructors and its numeric dtypes allowed as well (``_numpy_reconstructors``), the route PyTorch documents
  for numpy arrays; an array of Python objects is refused. Anything else in them is refused as above.
- zip archives (policies) are read into memory entry by entry with size limits (``read_zip``), so that a
  truncated or corrupt archive is reported as such and a crafted one cannot exhaust memory.
- ``trust_file=True`` is the escape hatch for a file of one's own that only unpickling can read (a checkpoint
  of an older version holding other objects): ``torch.load(weights_only=False)``, announced by one logged line.
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mml_backbones.errors import DataError, one_line

log = logging.getLogger(__name__)

#: largest JSON entry of an archive read into memory (an SB3 ``data`` entry is ~20 kB; metadata ~3 kB)
MAX_JSON_BYTES = 16 * 2**20
#: largest total of an archive's entries read into memory (uncompressed; an MLP policy is well under 1 MB)
MAX_ARCHIVE_BYTES = 2**30
#: a zip's end record (22 bytes) and its comment (at most 65535 bytes) lie in this many last bytes
_END_RECORD_SEARCH = 22 + 65535
#: how to continue when a file is refused (appended to refusals of checkpoints)
TRUST_HINT = (
    "--trust-file (trust_file=True) unpickles it, only for a file you wrote yourself: that runs any code inside"
)


def _numpy_reconstructors() -> list[Any]:
    """numpy's array, dtype and scalar re-constructors under the names numpy 2 and numpy 1 pickle them with.

    Dtypes are the numeric and boolean ones only (a dtype is rebuilt through its class in numpy 2).
    """
    from numpy._core import multiarray  # numpy >= 2 (the project pins numpy 2)

    codes = "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]
    numeric = sorted({type(np.dtype(c)) for c in codes}, key=lambda t: t.__name__)
    out: list[Any] = [np.ndarray, np.dtype, *numeric]
    for name in ("_reconstruct", "scalar"):
        fn = getattr(multiarray, name)
        out += [(fn, f"numpy._core.multiarray.{name}"), (fn, f"numpy.core.multiarray.{name}")]
    return out


def note_unpickling(path: str | Path, how: str) -> None:
    """Log the one line that says a file is being unpickled (the ``trust_file`` escape hatch)."""
    log.warning("trust_file: unpickling %s with %s; this runs any code the file holds", path, how)


def _refused_global(message: str) -> str | None:
    """The object a weights-only load refused, as torch names it in its error message."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


def load_torch(
    source: str | Path | bytes,
    what: str,
    *,
    trust_file: bool = False,
    legacy_numpy: bool = False,
    hint: str = "",
) -> Any:
    """Read a torch file as data (``torch.load(weights_only=True)``); a refused or damaged file is a DataError.

    Args:
        source: a path, or the file's bytes (an archive entry).
        what: how messages name the file, e.g. ``"checkpoint run/checkpoints/last.pt"``.
        trust_file: unpickle instead (``weights_only=False``), logged; only for a file one wrote oneself.
        legacy_numpy: also accept numpy arrays and scalars (checkpoints of format 2).
        hint: how to continue, added to the message of a refused or damaged file (a refused one also names
            the ``trust_file`` hatch).
    """
    then = f"; {hint}" if hint else ""
    if isinstance(source, str | Path) and not Path(source).is_file():
        raise DataError(f"cannot read {what}: file not found")
    f = io.BytesIO(source) if isinstance(source, bytes) else source
    if trust_file:
        note_unpickling(source if not isinstance(source, bytes) else what, "torch.load(weights_only=False)")
        try:
            return torch.load(f, map_location="cpu", weights_only=False)
        except Exception as e:  # a trusted file can still be torn
            raise DataError(f"cannot read {what}: truncated or corrupt ({type(e).__name__}){then}") from e
    try:
        with _allowed(legacy_numpy), warnings.catch_warnings():
            # torch warns about the pickle protocol of files it did not write, before refusing them anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a torn, foreign or hostile file
        text = str(e)
        if "Weights only load failed" in text:
            found = _refused_global(text)
            held = f"an object of {found}" if found else "objects other than tensors and plain data"
            hatch = f"{then}, or {TRUST_HINT}" if hint else f"; {TRUST_HINT}"
            raise DataError(f"cannot read {what}: it holds {held}, which only unpickling can read{hatch}") from None
        raise DataError(f"cannot read {what}: truncated or corrupt ({type(e).__name__}){then}") from None
    if legacy_numpy:
        _refuse_object_arrays(obj, what)
    return obj


@contextmanager
def _allowed(legacy_numpy: bool) -> Iterator[None]:
    if not legacy_numpy:
        yield
        return
    with torch.serialization.safe_globals(_numpy_reconstructors()):
        yield


def _refuse_object_arrays(obj: Any, what: str) -> None:
    """Numeric and boolean numpy arrays are data; an array of Python objects is not accepted."""
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.kind not in "biufc":
            raise DataError(f"cannot read {what}: it holds a numpy array of dtype {obj.dtype}, not numbers")
    elif isinstance(obj, Mapping):
        for v in obj.values():
            _refuse_object_arrays(v, what)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _refuse_object_arrays(v, what)


def to_plain(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers (what weights-only reads back).

    Containers are rebuilt only where something changed, so a module's ``state_dict`` (an OrderedDict with
    version metadata) is saved as it is. Anything a weights-only load would refuse is a TypeError here, when
    the checkpoint is written, not when a resume reads it.
    """
    if isinstance(obj, np.generic):  # before the Python types: np.float64 is a float subclass, pickled as numpy
        return obj.item()
    if isinstance(obj, torch.Tensor | str | bool | int | float | type(None)):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"cannot checkpoint a numpy array of dtype {obj.dtype}")
        return torch.from_numpy(np.array(obj))  # a copy: the checkpoint must not share memory with the run
    if isinstance(obj, Mapping):
        items = {k: to_plain(v) for k, v in obj.items()}
        same = all(items[k] is v for k, v in obj.items()) and isinstance(obj, dict)
        return obj if same else items
    if isinstance(obj, list | tuple):
        values = [to_plain(v) for v in obj]
        if all(a is b for a, b in zip(values, obj)):
            return obj
        return values if isinstance(obj, list) else tuple(values)
    if isinstance(obj, torch.Size | torch.dtype | torch.device):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}: store tensors, numbers, strings, lists and dicts")


def save_torch(obj: Any, path: Path) -> None:
    """Write ``to_plain(obj)`` with ``torch.save``, atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(to_plain(obj), tmp)
    tmp.replace(path)


def read_zip(
    path: str | Path, what: str, only: Collection[str] | None = None, max_total: int = MAX_ARCHIVE_BYTES
) -> dict[str, bytes]:
    """The entries of a zip archive (those named in ``only``, if given), read into memory.

    DataError for a missing, truncated, corrupt or oversized archive, and for one with an entry name twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    _check_end_record(path, what)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            twice = sorted(n for n, k in Counter(i.filename for i in infos).items() if k > 1)
            if twice:
                raise DataError(f"{path} is not a valid {what}: entries {twice} appear twice")
            wanted = [i for i in infos if only is None or i.filename in only]
            total = sum(i.file_size for i in wanted)
            if total > max_total:
                raise DataError(f"{path}: {what} entries hold {total} bytes uncompressed, more than {max_total}")
            return {i.filename: z.read(i) for i in wanted}
    except DataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise DataError(f"{path} is not a valid {what} (truncated or corrupt: {e})") from None
    except Exception as e:  # zlib and lzma raise their own types for damaged streams
        raise DataError(f"{path} is not a valid {what} (truncated or corrupt: {type(e).__name__})") from None


def _check_end_record(path: Path, what: str) -> None:
    """A zip archive ends with its end-of-central-directory record (and comment).

    ``zipfile`` accepts bytes after the last end record it finds, so an archive cut short after an append (as
    ``agents.policy_io.add_metadata`` makes) opens as the older archive it once was; this says it is truncated.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - _END_RECORD_SEARCH))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    comment = int.from_bytes(tail[at + 20 : at + 22], "little") if at >= 0 else 0
    if at < 0 or at + 22 + comment != len(tail):
        raise DataError(f"{path} is not a valid {what} (truncated or corrupt: it does not end with a zip end record)")


def read_json(data: bytes, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON entry of at most ``max_bytes``; DataError for anything else."""
    if len(data) > max_bytes:
        raise DataError(f"{what} holds {len(data)} bytes, more than the {max_bytes} this reader accepts")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{what} is not valid JSON ({type(e).__name__}: {one_line(e, 200)})") from None
