"""Which torch device a run uses: ``auto`` resolved, and a device this machine or torch build lacks refused."""

from __future__ import annotations

from mml_backbones.errors import ConfigError


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; any other name is checked and returned.

    A CUDA device on a CPU-only torch build, on a machine without a visible GPU or past the number of GPUs is a
    ConfigError naming the fix, instead of torch's traceback at the first tensor moved there.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ConfigError(
                f"device {name!r}: this torch build ({torch.__version__}) has no CUDA support; use --device cpu, or "
                "--device auto (cuda when available), or install a CUDA build of torch (the Makefile's TORCH_SPEC "
                "and TORCH_INDEX)"
            )
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r}: no CUDA device is visible on this machine; use --device cpu or --device auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available here; use --device cpu or --device auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: only cpu, cuda, mps and auto are supported")
    return name
