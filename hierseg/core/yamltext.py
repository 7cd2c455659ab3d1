"""YAML read by hand: where a parse error is and what it says, and ``KEY=VALUE`` assignments (``--set``) whose
value is YAML, so ``lr=1e-3`` is a number and ``datasets=[cityscapes, mapillary]`` a list.

The commands that read them word their own messages (a config names its file, ``models info`` the pair); what a
YAML error means is worked out once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from hierseg.core.errors import HiersegError


def yaml_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a parse error points at, or None when PyYAML gives no position."""
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong, in the parser's words (``mapping values are not allowed here``), on one line."""
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def split_assignment(item: str) -> tuple[str, str] | None:
    """``"a.b = 3"`` -> ``("a.b", " 3")``; None when there is no ``=`` or no key before it."""
    key, sep, text = item.partition("=")
    key = key.strip()
    return (key, text) if sep and key else None


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["m=32", "datasets=[cityscapes, mapillary]"]`` -> ``{"m": 32, "datasets": [...]}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        split = split_assignment(pair)
        if split is None:
            raise HiersegError(f"--set {pair!r}: expected key=value")
        key, text = split
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise HiersegError(f"--set {pair!r}: value is not valid YAML ({yaml_problem(exc)})") from None
    return out
