"""The one configuration mechanism of the recipes: a dataclass of hyper-parameters whose every field is a flag.

A recipe keeps a dataclass instance at the top (its defaults), calls :func:`add_config_arguments` to give the parser
one ``--field-name`` per field and :func:`config_from_args` to get the configured instance back
(:func:`parse_config_args` does both around ``parser.parse_args``). Flag types follow
the field annotations:

* ``int``, ``float``, ``str``: one value; ``X | None``: also ``none`` (or ``off``);
* ``bool``: ``--name`` / ``--no-name``;
* ``tuple[float, float]`` (a range): ``low,high`` or ``low high``; with ``| None`` also ``none``.

Field metadata: ``help`` (text), ``choices`` (allowed values), ``flag=False`` (not a flag, e.g. fixed by the
dataset). ``--help`` lists every field with its default.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing

__all__ = ["add_config_arguments", "config_from_args", "parse_config_args"]

_NONE = ("none", "off")


def _optional(annotation) -> tuple[object, bool]:
    """``(inner type, is optional)`` of an annotation such as ``float | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return inner[0], True
    return annotation, False


def _scalar_parser(kind, optional: bool, name: str):
    def parse(text: str):
        if optional and text.lower() in _NONE:
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} takes a {kind.__name__}{' or none' if optional else ''}; "
                                             f"received {text!r}") from None
    return parse


def _fields(config) -> list[tuple[dataclasses.Field, object]]:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"config must be a dataclass instance; received {type(config).__name__}")
    hints = typing.get_type_hints(type(config))
    return [(field, hints[field.name]) for field in dataclasses.fields(config) if field.metadata.get("flag", True)]


def add_config_arguments(parser: argparse.ArgumentParser, config) -> None:
    """Add ``--<field-name>`` for every field of the dataclass instance ``config``, defaulting to its value."""
    for field, annotation in _fields(config):
        value = getattr(config, field.name)
        flag = "--" + field.name.replace("_", "-")
        kind, optional = _optional(annotation)
        help_text = field.metadata.get("help", "")
        shown = "none" if value is None else (",".join(str(v) for v in value) if isinstance(value, tuple) else value)
        help_text = f"{help_text} (default {shown})".strip()
        options = dict(dest=field.name, default=value, help=help_text)
        if "choices" in field.metadata:
            options["choices"] = field.metadata["choices"]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, nargs="+", metavar="LOW,HIGH", **options)
        else:
            parser.add_argument(flag, type=_scalar_parser(kind, optional, field.name.replace("_", "-")), **options)


def _range(name: str, value, optional: bool):
    """A ``tuple`` field from the parsed tokens: ``["0.8", "1.25"]``, ``["0.8,1.25"]`` or ``["none"]``."""
    if value is None or isinstance(value, tuple):
        return value
    text = ",".join(value)
    if optional and text.lower() in _NONE:
        return None
    try:
        parts = tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        parts = ()
    if len(parts) != 2:
        raise ValueError(f"--{name.replace('_', '-')} takes LOW,HIGH (or LOW HIGH{', or none' if optional else ''}); "
                         f"received {' '.join(value)!r}")
    return parts


def config_from_args(args: argparse.Namespace, config):
    """``config`` with every flagged field replaced by the parsed argument of the same name."""
    values = {}
    for field, annotation in _fields(config):
        if not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        kind, optional = _optional(annotation)
        if typing.get_origin(kind) is tuple:
            value = _range(field.name, value, optional)
        values[field.name] = value
    return dataclasses.replace(config, **values)


def parse_config_args(parser: argparse.ArgumentParser, config, argv=None, check=None):
    """One flag per field of ``config`` (:func:`add_config_arguments`), ``argv`` parsed, ``check(args)`` (a message
    it returns goes to ``parser.error``), then ``(args, configured instance)`` (:func:`config_from_args`)."""
    add_config_arguments(parser, config)
    args = parser.parse_args(argv)
    message = check(args) if check is not None else None
    if message:
        parser.error(message)
    return args, config_from_args(args, config)
