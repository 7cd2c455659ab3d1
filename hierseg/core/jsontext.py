"""JSON read from files the user hands over (a tree artifact, a remap manifest, a metrics log, a checkpoint's
metadata): the one place its errors are worded.

``json.loads`` keeps the last of two equal keys without a word and raises ``RecursionError`` (not a ``ValueError``)
on a document nested a few thousand levels deep; here both are one-line :class:`HiersegError` naming the source.
"""

from __future__ import annotations

import json
from typing import Any

from hierseg.core.errors import HiersegError


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json(text: str, source: str, what: str = "JSON") -> Any:
    """``json.loads(text)``; broken, repeated-key or too deeply nested JSON is one line ``SOURCE:LINE: ...``."""
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise HiersegError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except _Duplicate as exc:
        raise HiersegError(f"{source}: not a valid {what}: key {exc.key!r} given twice in one object") from None
    except RecursionError:
        raise HiersegError(f"{source}: not a valid {what}: nested too deeply") from None
