"""Model keyword arguments checked before a model is built: the type the model's signature declares and the range
of every numeric argument (widths, counts, weights), so ``m=-8``, ``m=0`` or ``m=abc`` is one line naming the
argument, its range and the value, instead of a traceback from inside torch or an attempt to allocate terabytes.

Choices a model checks itself with a message of its own (``output_stride``, PDN's ``neighbours``, DSNet's odd
``kernel``) are only typed here.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from hierseg.core.errors import HiersegError


@dataclass(frozen=True)
class Range:
    low: float
    high: float | None = None
    low_open: bool = False  # low itself excluded

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


# By argument name: the same name means the same thing in every model of the zoo.
RANGES: dict[str, Range] = {
    "m": Range(1, 4096), "m0": Range(1, 4096), "aspp_channels": Range(1, 4096), "channels": Range(1, 4096),
    "width": Range(4, 4096), "num_classes": Range(1, 65535), "stages": Range(1, 16), "layers": Range(1, 64),
    "kernel": Range(1, 31), "aspp_rates": Range(1, 256), "eval_pool_crop": Range(1, 16384),
    "aux_weight": Range(0, 1000), "ohem_keep": Range(0, 1, low_open=True), "ohem_threshold": Range(0, 1000),
}


class ArgumentError(HiersegError):
    """``key`` and ``reason`` apart, for a config error's ``model.kwargs.KEY: reason``; the message reads
    ``KEY must be ...``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key} {reason}")
        self.key, self.reason = key, reason


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _conforms(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (Any, object, inspect.Parameter.empty):
        return True
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, str | Path)
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
        return all(_conforms(v, args[0]) for v in value) if args else True
    return True  # any other annotation is the model's to check


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (tuple, list, collections.abc.Sequence):
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Declared types of an entry point's arguments and of the model class behind it (the class's own win)."""
    hints: dict[str, Any] = {}
    cls = typing.get_type_hints(fn).get("return")
    for target in (fn, cls.__init__ if inspect.isclass(cls) else None):
        if target is None:
            continue
        try:
            hints.update({k: v for k, v in typing.get_type_hints(target).items() if k != "return"})
        except (NameError, TypeError):  # an annotation that cannot be resolved: leave those arguments unchecked
            continue
    return hints


def check_arguments(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`ArgumentError` (``key``, ``reason``) for the first argument of entry point ``fn`` of the wrong
    type or range."""
    hints = _hints(fn)
    for key, value in kwargs.items():
        hint = hints.get(key, Any)
        if not _conforms(value, hint):
            raise ArgumentError(key, f"must be {_describe(hint)}, not {value!r}")
        limits = RANGES.get(key)
        if limits is None:
            continue
        numbers = value if isinstance(value, list | tuple) else [value]
        for number in numbers:
            if (_is_int(number) or isinstance(number, float)) and number not in limits:
                kind = "a number" if isinstance(number, float) else "an integer"
                raise ArgumentError(key, f"must be {kind} {limits}, not {number!r}")
