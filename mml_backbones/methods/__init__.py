"""Training methods, one file each, found by name: ``build_method("ogm_ge", {"alpha": 0.5}, model, ctx)``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mml_backbones.config import from_dict, to_dict
from mml_backbones.errors import ConfigError
from mml_backbones.lazy import lazy_getattr
from mml_backbones.registry import Registry

if TYPE_CHECKING:
    from mml_backbones.methods.base import IterationBatch, Method, MethodContext, Predictions, StepResult
    from mml_backbones.models.model import MultimodalModel

#: names of ``methods.base`` (torch) imported on first use, so that the registry's names are cheap to list
__getattr__ = lazy_getattr(
    __name__,
    dict.fromkeys(("IterationBatch", "Method", "MethodContext", "Predictions", "StepResult"), f"{__name__}.base"),
)


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its class (imported on first use) and preset config values.

    Attributes:
        name: registry name.
        path: ``"module:Class"`` of the Method subclass.
        preset: config values this name fixes (``concat`` is ``joint`` with unimodal_weight 0).
        summary: one line for listings.
    """

    name: str
    path: str
    preset: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def method_class(self) -> type[Method]:
        """Import and return the Method subclass."""
        module, cls = self.path.split(":")
        return getattr(importlib.import_module(module), cls)


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(name: str, path: str, preset: dict[str, Any] | None = None, summary: str = "") -> None:
    """Register a method class given as ``"module:Class"``, optionally with preset config values."""
    METHODS.register(name, MethodEntry(name, path, dict(preset or {}), summary))


def method_config(name: str, options: dict[str, Any] | None = None) -> Any:
    """The config of method ``name``: its defaults, then the preset, then ``options``."""
    entry = METHODS.get(name)
    cls = entry.method_class().Config
    values = {**to_dict(cls()), **entry.preset, **(options or {})}
    try:
        return from_dict(cls, values)
    except ConfigError as e:
        raise ConfigError(f"method {name!r}: {e}") from None


def build_method(name: str, options: dict[str, Any] | None, model: MultimodalModel, context: MethodContext) -> Method:
    """Instantiate method ``name`` with ``options`` for ``model``."""
    entry = METHODS.get(name)
    return entry.method_class()(method_config(name, options), model, context)


register_method("joint", "mml_backbones.methods.joint:Joint", summary="fusion loss + unimodal head losses")
register_method(
    "concat",
    "mml_backbones.methods.joint:Joint",
    preset={"unimodal_weight": 0.0},
    summary="fusion loss only (the Concat baseline); unimodal heads are detached monitors",
)
register_method("ogm_ge", "mml_backbones.methods.ogm_ge:OGMGE", summary="on-the-fly gradient modulation (CVPR 2022)")
register_method(
    "ecsp",
    "mml_backbones.methods.ecsp:ECSP",
    summary="text head + fusion head ensemble, weight chosen on validation (ECSP, WECIA 2023)",
)
register_method(
    "mie",
    "mml_backbones.methods.mie:MIE",
    summary="alternating unimodal SAM + flat-direction gradient modification (MIE/IGM, IJCAI 2025)",
)
register_method(
    "mla",
    "mml_backbones.methods.mla:MLA",
    summary="alternating unimodal learning, shared head, orthogonal gradient projection (CVPR 2024)",
)
register_method("remix", "mml_backbones.methods.remix:Remix", summary="per-sample data remixing (ICML 2025)")
register_method("valuation", "mml_backbones.methods.valuation:Valuation", summary="Shapley resampling (CVPR 2024)")
register_method("mmpareto", "mml_backbones.methods.mmpareto:MMPareto", summary="Pareto gradient mixing (ICML 2024)")

__all__ = [
    "METHODS",
    "IterationBatch",
    "Method",
    "MethodContext",
    "Predictions",
    "StepResult",
    "build_method",
    "method_config",
    "register_method",
]
