"""Command-line flags derived from config dataclasses, and reading back exactly the flags a user gave.

Every field of a config dataclass becomes a flag: ``--name`` for a field of the class itself and ``--parent.name``
for a field of a nested config (``--optim.lr``, ``--model.feature-dim``); underscores become dashes. The help text
is the field's entry in the class docstring's ``Attributes:`` section (parsed with docstring_parser), followed by
its default. Values by the field's type:

    bool                   --flag / --no-flag
    int, float, str        one value; a field that may be None also takes "none"
    Literal[...]           one of the choices
    tuple[...]             comma-separated values
    dict[str, str]         KEY=VALUE, repeatable, or several comma-separated in one
    dict[str, Any]         KEY=VALUE, repeatable; the value is read as JSON when it parses (n=3, hidden=[8])
    dict[str, dict]        OUTER.KEY=VALUE, repeatable (per-modality options)

Flags default to "not given" (``argparse.SUPPRESS``), so that ``given_values`` returns exactly what was typed: a
new run overlays it on the config's defaults, a resumed run on its saved config (``overlay``), and ``differences``
names every given value that changes a saved one as ``key: old -> new``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mml_backbones.config import parse_options, to_dict
from mml_backbones.errors import ConfigError

#: prefix of the argparse destinations of config flags (dots cannot start a Python name, so no clash)
DEST = "config:"


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its description in ``cls``'s docstring ``Attributes:`` section, on one line."""
    import docstring_parser

    doc = docstring_parser.parse(cls.__doc__ or "")
    return {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}


def short_doc(cls: type) -> str:
    """The first line of ``cls``'s docstring."""
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0].rstrip(".")


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


def _scalar(kind: type, optional: bool) -> Callable[[str], Any]:
    """Parse one value of ``kind``; "none" gives None when the field may be None."""

    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def _sequence(hint: Any, optional: bool) -> Callable[[str], Any]:
    """Parse comma-separated values into the tuple ``hint`` describes."""
    args = typing.get_args(hint)
    kind = args[0] if args else str

    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return None
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            return tuple(kind(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    parse.__name__ = "list"
    return parse


class _DictAction(argparse.Action):
    """Merge ``KEY=VALUE`` (or ``OUTER.KEY=VALUE`` for nested dicts) into a dict, one flag occurrence at a time."""

    def __init__(self, *args: Any, value_kind: str = "any", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_kind = value_kind

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option=None):
        current = getattr(namespace, self.dest, None)
        if isinstance(current, _Invalid):
            return
        current = dict(current or {})
        try:
            if self.value_kind == "str":  # "a=x,b=y" or "a=x": plain strings, commas separate pairs
                pairs = dict(_pair(p) for p in str(values).split(",") if p.strip())
            else:
                pairs = parse_options([values])
            if self.value_kind == "nested":
                for key, value in pairs.items():
                    outer, dot, inner = key.partition(".")
                    if not dot or not outer or not inner:
                        raise ConfigError(f"needs NAME.KEY=VALUE (e.g. text.freeze=true or *.dropout=0.1), got {key!r}")
                    current[outer] = {**current.get(outer, {}), inner: value}
            else:
                current.update(pairs)
        except ConfigError as e:  # reported by given_values as a DUSError: one line, no usage text
            current = _Invalid(f"{option}: {e}")
        setattr(namespace, self.dest, current)


class _Invalid(str):
    """A flag value that did not parse; ``given_values`` raises it as a ConfigError."""


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def _shown(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return json.dumps(to_dict(value)) if value else "none"
    return "none" if value is None else str(value)


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    notes: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
    title: str | None = None,
) -> None:
    """Add one flag per field of the dataclass ``cls`` (recursing into nested configs) to ``parser``.

    Args:
        parser: the parser (a subcommand's) to add the flags to.
        cls: the config dataclass.
        aliases: dotted field path -> further option strings (``{"optim.lr": ["--lr"]}``).
        choices: dotted field path -> the valid names, listed in the help (the config checks them itself, with
            its own message: argparse's would end the program instead of raising).
        notes: dotted field path -> text that replaces the default in the help; for a nested config, the
            description of its group (its fields then show no defaults of their own).
        skip: dotted field paths that get no flag.
        title: title of the group of the top-level fields (default: the class's first docstring line).
    """
    group = parser.add_argument_group(title or short_doc(cls))
    _add_fields(parser, group, cls, (), dict(aliases or {}), dict(choices or {}), dict(notes or {}), set(skip), True)


def _add_fields(parser, group, cls, prefix, aliases, choices, notes, skip, show_defaults) -> None:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    default = cls()
    nested = []
    for f in dataclasses.fields(cls):
        path = ".".join((*prefix, f.name))
        if path in skip:
            continue
        hint, optional = _unwrap_optional(hints[f.name])
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(hint):
            nested.append((f, hint, path, value is not None and show_defaults))
            continue
        flag = "--" + path.replace("_", "-")
        options = [flag, *aliases.get(path, ())]
        help_text = docs.get(f.name, "")
        if path in choices:  # listed, not enforced by argparse: the config's own check names the fix
            help_text += f" One of: {', '.join(choices[path])}."
        if path in notes:
            help_text += f" ({notes[path]})"
        elif show_defaults:
            help_text += f" (default: {_shown(value)})"
        kwargs: dict[str, Any] = {
            "dest": DEST + path,
            "default": argparse.SUPPRESS,
            "help": help_text.replace("%", "%%"),
        }
        origin = typing.get_origin(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(hint))
        elif origin is tuple:
            kwargs.update(type=_sequence(hint, optional), metavar="A,B,...")
        elif origin is dict:
            value_hint = typing.get_args(hint)[1] if typing.get_args(hint) else Any
            kind = "str" if value_hint is str else "nested" if typing.get_origin(value_hint) is dict else "any"
            metavar = {"str": "KEY=VALUE[,KEY=VALUE]", "nested": "NAME.KEY=VALUE", "any": "KEY=VALUE"}[kind]
            kwargs.update(action=_DictAction, value_kind=kind, metavar=metavar)
        elif hint in (int, float, str):
            kwargs.update(type=_scalar(hint, optional), metavar=f.name.upper())
        else:
            raise ConfigError(f"{cls.__name__}.{f.name}: no command-line form for type {hint!r}")
        group.add_argument(*options, **kwargs)
    for f, hint, path, show in nested:
        description = notes.get(path) or docs.get(f.name, "")
        sub = parser.add_argument_group(f"{path}: {short_doc(hint)}", description.replace("%", "%%") or None)
        _add_fields(parser, sub, hint, (*prefix, f.name), aliases, choices, notes, skip, show)


def add_run_dir_flags(group: Any, config_file: str, grows: str) -> None:
    """``--resume`` and ``--overwrite`` (the rules: ``mml_backbones.run_dir.check_run_dir``).

    Args:
        group: the parser or argument group to add them to.
        config_file: the run's saved config, which ``--resume`` starts from.
        grows: the flag that may grow on resume, and what for (``"--epochs may grow to extend a finished run"``).
    """
    group.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the run in --out from its last checkpoint, with its saved {config_file} (flags optional; "
        f"{grows})",
    )
    group.add_argument("--overwrite", action="store_true", help="replace the run already in --out")


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config flags given on the command line, as dotted field path -> value."""
    given = {k[len(DEST) :]: v for k, v in vars(args).items() if k.startswith(DEST)}
    for value in given.values():
        if isinstance(value, _Invalid):
            raise ConfigError(str(value))
    return given


def overlay(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a config as a dict) with the ``given`` dotted paths set; a given dict merges into the base's."""
    out = json.loads(json.dumps(to_dict(dict(base))))  # a deep copy in JSON terms (tuples become lists)
    for path, value in given.items():
        *parents, leaf = path.split(".")
        node = out
        for name in parents:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        value = to_dict(value)
        node[leaf] = {**node[leaf], **value} if isinstance(value, dict) and isinstance(node.get(leaf), dict) else value
    return out


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for name in path.split("."):
        if not isinstance(node, Mapping) or name not in node:
            return None
        node = node[name]
    return node


def differences(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted path -> (old, new) for every given value that changes ``base`` (dict values compared key by key)."""
    out: dict[str, tuple[Any, Any]] = {}
    for path, value in given.items():
        value = json.loads(json.dumps(to_dict(value)))
        if isinstance(value, dict):
            out.update(differences(base, {f"{path}.{k}": v for k, v in value.items()}))
            continue
        old = json.loads(json.dumps(to_dict(_lookup(base, path))))
        if old != value:
            out[path] = (old, value)
    return out


def format_differences(changes: Mapping[str, tuple[Any, Any]]) -> str:
    """``key: old -> new`` lines."""
    return "\n".join(f"  {k}: {json.dumps(old)} -> {json.dumps(new)}" for k, (old, new) in changes.items())
