"""Option choices for typer, which wants an ``Enum`` per choice list."""

from __future__ import annotations

from enum import Enum


def choices(name: str, *values: str) -> type[Enum]:
    """A ``str`` enum whose members are ``values`` (member name = value)."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


Format = choices("Format", "table", "csv", "json")
LabelFormat = choices("LabelFormat", "csv", "json", "npy")
Unknown = choices("Unknown", "error", "ignore")
GraphFormat = choices("GraphFormat", "graphml", "dot", "json")
GraphKind = choices("GraphKind", "tree", "neurons")
SuggestFormat = choices("SuggestFormat", "table", "json", "yaml")
ProjectionRule = choices("ProjectionRule", "sum", "argmax")
