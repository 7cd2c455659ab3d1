"""What a report is made of: sections of named values and tables, which every output renders the same way.

A metric describes its result as :class:`Section` objects (headline values, a table, the flat scalars it logs);
the report's JSON, CSV, the CLI's table and TensorBoard only walk sections, so a new metric, or a new section such
as a zero-shot evaluation's "mIoU over reachable labels", needs no change to any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FRACTION, COUNT, NUMBER, TEXT = "fraction", "count", "number", "text"
KINDS = (FRACTION, COUNT, NUMBER, TEXT)


def missing(value: Any) -> bool:
    """``None`` or NaN: nothing to score."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Field:
    """A named value: ``key`` in JSON and CSV, ``title`` in the table; a ``fraction`` (0..1) is shown in percent."""

    key: str
    title: str
    kind: str = FRACTION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.key}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    def json(self, value: Any) -> Any:
        """JSON-able: NaN becomes ``None``, numpy numbers plain ones."""
        if missing(value):
            return None
        if self.kind == COUNT:
            return int(value)
        if self.kind in (FRACTION, NUMBER):
            return float(value)
        return value if isinstance(value, bool | int | float | str) else str(value)

    def text(self, value: Any) -> str:
        """The table's cell: a fraction in percent with two decimals, ``-`` for nothing."""
        if missing(value):
            return "-"
        if self.kind == FRACTION:
            return f"{100 * value:.2f}"
        if self.kind == COUNT:
            return str(int(value))
        if self.kind == NUMBER:
            return f"{float(value):.3f}"
        return str(value)


@dataclass(frozen=True)
class Section:
    """One part of a report: headline ``values``, an optional table (``columns``, ``rows``; the first column is the
    row's key), the flat ``scalars`` it contributes to TensorBoard and ``metrics.jsonl`` (name -> value), a ``note``
    saying what the rows mean, and ``detail``: shown only when every class is asked for (``--per-class``)."""

    key: str
    title: str
    values: tuple[tuple[Field, Any], ...] = ()
    columns: tuple[Field, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    scalars: dict[str, float] = field(default_factory=dict)
    note: str = ""
    detail: bool = False

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"section {self.key}: a row has {len(row)} values for {len(self.columns)} columns")

    def value(self, key: str) -> Any:
        """A headline value by key."""
        for f, v in self.values:
            if f.key == key:
                return v
        raise KeyError(f"section {self.key} has no value {key!r}")

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-able dicts."""
        return [{c.key: c.json(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.key: f.json(v) for f, v in self.values}
        if self.columns:
            out["rows"] = self.records()
        return out
